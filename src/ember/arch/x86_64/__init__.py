"""ember.arch.x86_64"""
