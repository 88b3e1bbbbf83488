"""Every standard field of the six objects the product reads, as a real org's describe lists them.

From Salesforce's Object Reference (API v61, an org without State and Country picklists, Person
Accounts or multi-currency): names, types, lengths, which fields the platform keeps (read-only),
which may not be empty, lookups and their targets, and the compound address fields with their
components. `schema.py` builds the sObjects from these declarations; nothing else in the
sandbox names a standard field, so a field added here is stored, described and queryable.

A declaration is `(name, type, length, flags)` or, for a lookup, `(name, "reference", targets,
flags)`; `flags` holds `n` (never empty: `nillable: false`), `r` (read-only: neither createable
nor updateable) and `c` (calculated). `address` fields are not stored: they are made of the
components that name them as their `compoundFieldName` (describe's own order is kept).
"""

from __future__ import annotations

from typing import Any

Declaration = tuple[str, str, Any, str]

# (precision, scale) of number fields that differ from the type's default.
NUMBER_SHAPES = {
    "Latitude": (18, 15),
    "Longitude": (18, 15),
    "AnnualRevenue": (18, 0),
    "Probability": (3, 0),
    "ExpectedRevenue": (18, 2),
    "Amount": (18, 2),
    "TotalOpportunityQuantity": (18, 2),
}
# An address's components, by suffix, in the order describe lists them (then the compound).
ADDRESS_PARTS = (
    ("Street", "textarea", 255, "street"),
    ("City", "string", 40, "city"),
    ("State", "string", 80, "state"),
    ("PostalCode", "string", 20, "postalCode"),
    ("Country", "string", 80, "country"),
    ("Latitude", "double", 0, "latitude"),
    ("Longitude", "double", 0, "longitude"),
    ("GeocodeAccuracy", "picklist", 40, "geocodeAccuracy"),
)
# Keys of a compound address value as the REST API writes it (alphabetical, as Salesforce does).
ADDRESS_KEYS = (
    "city",
    "country",
    "geocodeAccuracy",
    "latitude",
    "longitude",
    "postalCode",
    "state",
    "street",
)


def address(prefix: str) -> list[Declaration]:
    """An address's eight components and the compound field itself (`{prefix}Address`)."""
    parts: list[Declaration] = [(prefix + s, t, n, "") for s, t, n, _key in ADDRESS_PARTS]
    return [*parts, (f"{prefix}Address", "address", 0, "")]


def audit() -> list[Declaration]:
    return [
        ("CreatedDate", "datetime", 0, "nr"),
        ("CreatedById", "reference", ("User",), "nr"),
        ("LastModifiedDate", "datetime", 0, "nr"),
        ("LastModifiedById", "reference", ("User",), "nr"),
        ("SystemModstamp", "datetime", 0, "nr"),
    ]


def viewed() -> list[Declaration]:
    return [("LastViewedDate", "datetime", 0, "r"), ("LastReferencedDate", "datetime", 0, "r")]


ACCOUNT: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("IsDeleted", "boolean", 0, "nr"),
    ("MasterRecordId", "reference", ("Account",), "r"),
    ("Name", "string", 255, "n"),
    ("Type", "picklist", 255, ""),
    ("ParentId", "reference", ("Account",), ""),
    *address("Billing"),
    *address("Shipping"),
    ("Phone", "phone", 40, ""),
    ("Fax", "phone", 40, ""),
    ("AccountNumber", "string", 40, ""),
    ("Website", "url", 255, ""),
    ("PhotoUrl", "url", 255, "r"),
    ("Sic", "string", 20, ""),
    ("Industry", "picklist", 255, ""),
    ("AnnualRevenue", "currency", 0, ""),
    ("NumberOfEmployees", "int", 0, ""),
    ("Ownership", "picklist", 255, ""),
    ("TickerSymbol", "string", 20, ""),
    ("Description", "textarea", 32000, ""),
    ("Rating", "picklist", 255, ""),
    ("Site", "string", 80, ""),
    ("OwnerId", "reference", ("User",), "n"),
    *audit(),
    ("LastActivityDate", "date", 0, "r"),
    *viewed(),
    ("Jigsaw", "string", 20, ""),
    ("JigsawCompanyId", "string", 20, "r"),
    ("CleanStatus", "picklist", 40, ""),
    ("AccountSource", "picklist", 255, ""),
    ("DunsNumber", "string", 9, ""),
    ("Tradestyle", "string", 255, ""),
    ("NaicsCode", "string", 8, ""),
    ("NaicsDesc", "string", 120, ""),
    ("YearStarted", "string", 4, ""),
    ("SicDesc", "string", 80, ""),
    ("DandbCompanyId", "reference", ("DandBCompany",), ""),
    ("OperatingHoursId", "reference", ("OperatingHours",), ""),
]

# Name fields shared by Lead and Contact (User has its own, longer ones).
PERSON_NAME: list[Declaration] = [
    ("LastName", "string", 80, "n"),
    ("FirstName", "string", 40, ""),
    ("Salutation", "picklist", 40, ""),
    ("Name", "string", 121, "nr"),
]

LEAD: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("IsDeleted", "boolean", 0, "nr"),
    ("MasterRecordId", "reference", ("Lead",), "r"),
    *PERSON_NAME,
    ("Title", "string", 128, ""),
    ("Company", "string", 255, "n"),
    *address(""),
    ("Phone", "phone", 40, ""),
    ("MobilePhone", "phone", 40, ""),
    ("Fax", "phone", 40, ""),
    ("Email", "email", 80, ""),
    ("Website", "url", 255, ""),
    ("PhotoUrl", "url", 255, "r"),
    ("Description", "textarea", 32000, ""),
    ("LeadSource", "picklist", 255, ""),
    ("Status", "picklist", 255, "n"),
    ("Industry", "picklist", 255, ""),
    ("Rating", "picklist", 255, ""),
    ("AnnualRevenue", "currency", 0, ""),
    ("NumberOfEmployees", "int", 0, ""),
    ("OwnerId", "reference", ("Group", "User"), "n"),
    ("IsConverted", "boolean", 0, "nr"),
    ("ConvertedDate", "date", 0, "r"),
    ("ConvertedAccountId", "reference", ("Account",), "r"),
    ("ConvertedContactId", "reference", ("Contact",), "r"),
    ("ConvertedOpportunityId", "reference", ("Opportunity",), "r"),
    ("IsUnreadByOwner", "boolean", 0, "n"),
    *audit(),
    ("LastActivityDate", "date", 0, "r"),
    *viewed(),
    ("Jigsaw", "string", 20, ""),
    ("JigsawContactId", "string", 20, "r"),
    ("CleanStatus", "picklist", 40, ""),
    ("CompanyDunsNumber", "string", 9, ""),
    ("DandbCompanyId", "reference", ("DandBCompany",), ""),
    ("EmailBouncedReason", "string", 255, ""),
    ("EmailBouncedDate", "datetime", 0, ""),
    ("IndividualId", "reference", ("Individual",), ""),
]

CONTACT: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("IsDeleted", "boolean", 0, "nr"),
    ("MasterRecordId", "reference", ("Contact",), "r"),
    ("AccountId", "reference", ("Account",), ""),
    *PERSON_NAME,
    *address("Other"),
    *address("Mailing"),
    ("Phone", "phone", 40, ""),
    ("Fax", "phone", 40, ""),
    ("MobilePhone", "phone", 40, ""),
    ("HomePhone", "phone", 40, ""),
    ("OtherPhone", "phone", 40, ""),
    ("AssistantPhone", "phone", 40, ""),
    ("ReportsToId", "reference", ("Contact",), ""),
    ("Email", "email", 80, ""),
    ("Title", "string", 128, ""),
    ("Department", "string", 80, ""),
    ("AssistantName", "string", 40, ""),
    ("LeadSource", "picklist", 255, ""),
    ("Birthdate", "date", 0, ""),
    ("Description", "textarea", 32000, ""),
    ("OwnerId", "reference", ("User",), "n"),
    *audit(),
    ("LastActivityDate", "date", 0, "r"),
    ("LastCURequestDate", "datetime", 0, "r"),
    ("LastCUUpdateDate", "datetime", 0, "r"),
    *viewed(),
    ("EmailBouncedReason", "string", 255, ""),
    ("EmailBouncedDate", "datetime", 0, ""),
    ("IsEmailBounced", "boolean", 0, "nr"),
    ("PhotoUrl", "url", 255, "r"),
    ("Jigsaw", "string", 20, ""),
    ("JigsawContactId", "string", 20, "r"),
    ("CleanStatus", "picklist", 40, ""),
    ("IndividualId", "reference", ("Individual",), ""),
]

OPPORTUNITY: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("IsDeleted", "boolean", 0, "nr"),
    ("AccountId", "reference", ("Account",), ""),
    ("IsPrivate", "boolean", 0, "n"),
    ("Name", "string", 120, "n"),
    ("Description", "textarea", 32000, ""),
    ("StageName", "picklist", 255, "n"),
    ("Amount", "currency", 0, ""),
    ("Probability", "percent", 0, ""),
    ("ExpectedRevenue", "currency", 0, "rc"),
    ("TotalOpportunityQuantity", "double", 0, ""),
    ("CloseDate", "date", 0, "n"),
    ("Type", "picklist", 255, ""),
    ("NextStep", "string", 255, ""),
    ("LeadSource", "picklist", 255, ""),
    ("IsClosed", "boolean", 0, "nr"),
    ("IsWon", "boolean", 0, "nr"),
    ("ForecastCategory", "picklist", 40, "nr"),
    ("ForecastCategoryName", "picklist", 255, ""),
    ("CampaignId", "reference", ("Campaign",), ""),
    ("HasOpportunityLineItem", "boolean", 0, "nr"),
    ("Pricebook2Id", "reference", ("Pricebook2",), ""),
    ("OwnerId", "reference", ("User",), "n"),
    ("ContactId", "reference", ("Contact",), ""),
    *audit(),
    ("LastActivityDate", "date", 0, "r"),
    ("PushCount", "int", 0, "r"),
    ("LastStageChangeDate", "datetime", 0, "r"),
    ("FiscalQuarter", "int", 0, "r"),
    ("FiscalYear", "int", 0, "r"),
    ("Fiscal", "string", 6, "r"),
    *viewed(),
    ("HasOpenActivity", "boolean", 0, "nr"),
    ("HasOverdueTask", "boolean", 0, "nr"),
    ("LastAmountChangedHistoryId", "reference", ("OpportunityHistory",), "r"),
    ("LastCloseDateChangedHistoryId", "reference", ("OpportunityHistory",), "r"),
]

OPPORTUNITY_CONTACT_ROLE: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("OpportunityId", "reference", ("Opportunity",), "n"),
    ("ContactId", "reference", ("Contact",), "n"),
    ("Role", "picklist", 40, ""),
    ("IsPrimary", "boolean", 0, "n"),
    *audit(),
    ("IsDeleted", "boolean", 0, "nr"),
]

# User's preference and permission checkboxes: every one is a non-nillable boolean.
USER_FLAGS = [
    "UserPermissionsMarketingUser",
    "UserPermissionsOfflineUser",
    "UserPermissionsCallCenterAutoLogin",
    "UserPermissionsSFContentUser",
    "UserPermissionsKnowledgeUser",
    "UserPermissionsInteractionUser",
    "UserPermissionsSupportUser",
    "ForecastEnabled",
    "UserPreferencesActivityRemindersPopup",
    "UserPreferencesEventRemindersCheckboxDefault",
    "UserPreferencesTaskRemindersCheckboxDefault",
    "UserPreferencesReminderSoundOff",
    "UserPreferencesDisableAllFeedsEmail",
    "UserPreferencesDisableFollowersEmail",
    "UserPreferencesDisableProfilePostEmail",
    "UserPreferencesDisableChangeCommentEmail",
    "UserPreferencesDisableLaterCommentEmail",
    "UserPreferencesDisProfPostCommentEmail",
    "UserPreferencesContentNoEmail",
    "UserPreferencesContentEmailAsAndWhen",
    "UserPreferencesApexPagesDeveloperMode",
    "UserPreferencesReceiveNoNotificationsAsApprover",
    "UserPreferencesReceiveNotificationsAsDelegatedApprover",
    "UserPreferencesHideCSNGetChatterMobileTask",
    "UserPreferencesDisableMentionsPostEmail",
    "UserPreferencesDisMentionsCommentEmail",
    "UserPreferencesHideCSNDesktopTask",
    "UserPreferencesHideChatterOnboardingSplash",
    "UserPreferencesHideSecondChatterOnboardingSplash",
    "UserPreferencesDisCommentAfterLikeEmail",
    "UserPreferencesDisableLikeEmail",
    "UserPreferencesSortFeedByComment",
    "UserPreferencesDisableMessageEmail",
    "UserPreferencesDisableBookmarkEmail",
    "UserPreferencesDisableSharePostEmail",
    "UserPreferencesEnableAutoSubForFeeds",
    "UserPreferencesDisableFileShareNotificationsForApi",
    "UserPreferencesShowTitleToExternalUsers",
    "UserPreferencesShowManagerToExternalUsers",
    "UserPreferencesShowEmailToExternalUsers",
    "UserPreferencesShowWorkPhoneToExternalUsers",
    "UserPreferencesShowMobilePhoneToExternalUsers",
    "UserPreferencesShowFaxToExternalUsers",
    "UserPreferencesShowStreetAddressToExternalUsers",
    "UserPreferencesShowCityToExternalUsers",
    "UserPreferencesShowStateToExternalUsers",
    "UserPreferencesShowPostalCodeToExternalUsers",
    "UserPreferencesShowCountryToExternalUsers",
    "UserPreferencesShowProfilePicToGuestUsers",
    "UserPreferencesShowTitleToGuestUsers",
    "UserPreferencesShowCityToGuestUsers",
    "UserPreferencesShowStateToGuestUsers",
    "UserPreferencesShowPostalCodeToGuestUsers",
    "UserPreferencesShowCountryToGuestUsers",
    "UserPreferencesShowForecastingChangeSignals",
    "UserPreferencesHideS1BrowserUI",
    "UserPreferencesDisableEndorsementEmail",
    "UserPreferencesPathAssistantCollapsed",
    "UserPreferencesCacheDiagnostics",
    "UserPreferencesShowEmailToGuestUsers",
    "UserPreferencesShowManagerToGuestUsers",
    "UserPreferencesShowWorkPhoneToGuestUsers",
    "UserPreferencesShowMobilePhoneToGuestUsers",
    "UserPreferencesShowFaxToGuestUsers",
    "UserPreferencesShowStreetAddressToGuestUsers",
    "UserPreferencesLightningExperiencePreferred",
    "UserPreferencesPreviewLightning",
    "UserPreferencesHideEndUserOnboardingAssistantModal",
    "UserPreferencesHideLightningMigrationModal",
    "UserPreferencesHideSfxWelcomeMat",
    "UserPreferencesHideBiggerPhotoCallout",
    "UserPreferencesGlobalNavBarWTShown",
    "UserPreferencesGlobalNavGridMenuWTShown",
    "UserPreferencesCreateLEXAppsWTShown",
    "UserPreferencesFavoritesWTShown",
    "UserPreferencesRecordHomeSectionCollapseWTShown",
    "UserPreferencesRecordHomeReservedWTShown",
    "UserPreferencesFavoritesShowTopFavorites",
    "UserPreferencesExcludeMailAppAttachments",
    "UserPreferencesSuppressTaskSFXReminders",
    "UserPreferencesSuppressEventSFXReminders",
    "UserPreferencesPreviewCustomTheme",
    "UserPreferencesHasCelebrationBadge",
    "UserPreferencesUserDebugModePref",
    "UserPreferencesSRHOverrideActivities",
    "UserPreferencesNewLightningReportRunPageEnabled",
    "UserPreferencesReverseOpenActivitiesView",
    "UserPreferencesHasSentWarningEmail",
    "UserPreferencesHasSentWarningEmail238",
    "UserPreferencesHasSentWarningEmail240",
    "UserPreferencesNativeEmailClient",
    "UserPreferencesShowForecastingRoundedAmounts",
]

USER: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("Username", "string", 80, "n"),
    ("LastName", "string", 80, "n"),
    ("FirstName", "string", 40, ""),
    ("MiddleName", "string", 40, ""),
    ("Suffix", "string", 40, ""),
    ("Name", "string", 121, "nr"),
    ("CompanyName", "string", 80, ""),
    ("Division", "string", 80, ""),
    ("Department", "string", 80, ""),
    ("Title", "string", 80, ""),
    *address(""),
    ("Email", "email", 128, "n"),
    ("EmailPreferencesAutoBcc", "boolean", 0, "n"),
    ("EmailPreferencesAutoBccStayInTouch", "boolean", 0, "n"),
    ("EmailPreferencesStayInTouchReminder", "boolean", 0, "n"),
    ("SenderEmail", "email", 80, ""),
    ("SenderName", "string", 80, ""),
    ("Signature", "textarea", 1333, ""),
    ("StayInTouchSubject", "string", 80, ""),
    ("StayInTouchSignature", "textarea", 512, ""),
    ("StayInTouchNote", "string", 512, ""),
    ("Phone", "phone", 40, ""),
    ("Fax", "phone", 40, ""),
    ("MobilePhone", "phone", 40, ""),
    ("Alias", "string", 8, "n"),
    ("CommunityNickname", "string", 40, "n"),
    ("BadgeText", "string", 80, "nr"),
    ("IsActive", "boolean", 0, "n"),
    ("TimeZoneSidKey", "picklist", 40, "n"),
    ("UserRoleId", "reference", ("UserRole",), ""),
    ("LocaleSidKey", "picklist", 40, "n"),
    ("ReceivesInfoEmails", "boolean", 0, "n"),
    ("ReceivesAdminInfoEmails", "boolean", 0, "n"),
    ("EmailEncodingKey", "picklist", 40, "n"),
    ("ProfileId", "reference", ("Profile",), "n"),
    ("UserType", "picklist", 40, "r"),
    ("LanguageLocaleKey", "picklist", 40, "n"),
    ("EmployeeNumber", "string", 20, ""),
    ("DelegatedApproverId", "reference", ("Group", "User"), ""),
    ("ManagerId", "reference", ("User",), ""),
    ("LastLoginDate", "datetime", 0, "r"),
    ("LastPasswordChangeDate", "datetime", 0, "r"),
    *audit(),
    ("NumberOfFailedLogins", "int", 0, "r"),
    ("OfflineTrialExpirationDate", "datetime", 0, "r"),
    ("OfflinePdaTrialExpirationDate", "datetime", 0, "r"),
    *((name, "boolean", 0, "n") for name in USER_FLAGS),
    ("ContactId", "reference", ("Contact",), ""),
    ("AccountId", "reference", ("Account",), "r"),
    ("CallCenterId", "reference", ("CallCenter",), ""),
    ("Extension", "phone", 40, ""),
    ("FederationIdentifier", "string", 512, ""),
    ("AboutMe", "textarea", 1000, ""),
    ("FullPhotoUrl", "url", 1024, "r"),
    ("SmallPhotoUrl", "url", 1024, "r"),
    ("IsExtIndicatorVisible", "boolean", 0, "nr"),
    ("OutOfOfficeMessage", "string", 40, "r"),
    ("MediumPhotoUrl", "url", 1024, "r"),
    ("DigestFrequency", "picklist", 40, "n"),
    ("DefaultGroupNotificationFrequency", "picklist", 40, "n"),
    *viewed(),
    ("BannerPhotoUrl", "url", 1024, "r"),
    ("SmallBannerPhotoUrl", "url", 1024, "r"),
    ("MediumBannerPhotoUrl", "url", 1024, "r"),
    ("IsProfilePhotoActive", "boolean", 0, "nr"),
    ("IndividualId", "reference", ("Individual",), ""),
]

STANDARD_FIELDS: dict[str, list[Declaration]] = {
    "User": USER,
    "Account": ACCOUNT,
    "Lead": LEAD,
    "Contact": CONTACT,
    "Opportunity": OPPORTUNITY,
    "OpportunityContactRole": OPPORTUNITY_CONTACT_ROLE,
}

# Group: the queues that may own leads.
GROUP: list[Declaration] = [
    ("Id", "id", 18, "nr"),
    ("Name", "string", 40, "n"),
    ("DeveloperName", "string", 80, "n"),
    ("RelatedId", "reference", ("User", "UserRole"), "r"),
    ("Type", "picklist", 40, "nr"),
    ("Email", "email", 255, ""),
    ("OwnerId", "reference", ("Organization", "User"), "n"),
    ("DoesSendEmailToMembers", "boolean", 0, "n"),
    ("DoesIncludeBosses", "boolean", 0, "n"),
    *audit(),
]
STANDARD_FIELDS["Group"] = GROUP

# Labels that are not the name's words (`AnnualRevenue` is "Annual Revenue" by rule).
LABELS = {
    ("Account", "Name"): "Account Name",
    ("Account", "Phone"): "Account Phone",
    ("Account", "Type"): "Account Type",
    ("Account", "NumberOfEmployees"): "Employees",
    ("Lead", "IsConverted"): "Converted",
    ("Lead", "IsUnreadByOwner"): "Unread By Owner",
    ("Opportunity", "StageName"): "Stage",
    ("Opportunity", "Type"): "Opportunity Type",
    ("Opportunity", "Probability"): "Probability (%)",
    ("OpportunityContactRole", "IsPrimary"): "Primary",
    ("User", "IsActive"): "Active",
}


def label(sobject: str, name: str) -> str:
    """The field's label: its override, else its name's words (`OwnerId`: "Owner ID")."""
    if (sobject, name) in LABELS:
        return LABELS[(sobject, name)]
    if name == "Id":
        return f"{sobject} ID" if sobject != "OpportunityContactRole" else "Contact Role ID"
    base = name.removesuffix("Id") if name.endswith("Id") and name != "Id" else name
    words, word = [], ""
    for i, char in enumerate(base):
        starts = (
            char.isupper()
            and word
            and (not word[-1].isupper() or (i + 1 < len(base) and base[i + 1].islower()))
        )
        if starts:
            words.append(word)
            word = ""
        word += char
    words.append(word)
    text = " ".join(w for w in words if w)
    if text.startswith("Is "):
        text = text[3:]
    return text + (" ID" if base != name else "")
