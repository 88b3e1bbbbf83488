"""What the MSI connector packages share, each concern in one module.

`contract`: the five streams' JSON Schemas, read by the tap that emits them and the target that
loads them. Both packages depend on this one rather than on each other, so the contract has one
copy and neither plugin installs the other.
"""
