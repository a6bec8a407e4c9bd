"""anonymetry.risk"""
