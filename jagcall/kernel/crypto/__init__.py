"""The encryption kernel: key hierarchy, encrypted fields and files, rotation, shredding.

See docs/security/encryption.md for the design.
"""
