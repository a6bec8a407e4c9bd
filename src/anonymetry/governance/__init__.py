"""anonymetry.governance"""
