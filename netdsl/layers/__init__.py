"""netdsl.layers"""
