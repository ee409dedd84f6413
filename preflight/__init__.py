"""Offline preflight: the program under Pulumi's mock engine, with the real provider SDKs."""
