"""netdsl.ir"""
