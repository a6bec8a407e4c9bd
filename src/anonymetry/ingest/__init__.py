"""anonymetry.ingest"""
