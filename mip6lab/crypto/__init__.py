"""Cryptographic transforms for ESP and IKEv2, all over `cryptography`."""
