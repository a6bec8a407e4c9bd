"""anonymetry.service"""
