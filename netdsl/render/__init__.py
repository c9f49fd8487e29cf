"""netdsl.render"""
