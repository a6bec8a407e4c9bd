"""anonymetry.report"""
