"""A stand-in for campaign.check_seed that kills its worker process on one seed (a segfault in
generated code, simulated), for the campaign's crash handling test."""
import ctypes

from netdsl.fuzz.campaign import Result

CRASHING_SEED = 3


def crashing_check(seed, *arguments):
    if seed == CRASHING_SEED:
        ctypes.string_at(0)                       # reads address 0: the process dies
    return Result(seed, None, 0.0)
