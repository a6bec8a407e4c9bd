"""anonymetry.models"""
