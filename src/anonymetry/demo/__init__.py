"""anonymetry.demo"""
