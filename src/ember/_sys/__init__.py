"""ember._sys"""
