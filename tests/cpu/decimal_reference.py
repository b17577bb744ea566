#!/usr/bin/env python3
"""Exact-decimal reference of qtos's RSI and DMI/ADX (the step states of cpu/kernels/indicators.hpp, TA-Lib's
algorithm) for tests/cpu/decimal_test.cpp.

Reads "high,low,close" decimal text per line on stdin (the bars as a data file quotes them) and the period as the first
argument; prints one line per bar: "rsi,plus_di,minus_di,adx", each the exact value rounded to 17 significant digits,
or empty inside its lookback. Arithmetic is Python's decimal at 60 digits: differences of the quotes are exact, so a tie
is a tie, and the Wilder recursions carry far more digits than the double under test.
"""
import sys
from decimal import Decimal, getcontext

getcontext().prec = 60


def rsi(closes, n):
    out = [None] * len(closes)
    gain = loss = Decimal(0)
    prev = None
    for i, x in enumerate(closes):
        if i == 0:
            prev = x
            continue
        d = x - prev
        prev = x
        up = d if d > 0 else Decimal(0)
        down = -d if d < 0 else Decimal(0)
        if i <= n:
            gain += up
            loss += down
            if i < n:
                continue
            gain /= n
            loss /= n
        else:
            gain = (gain * (n - 1) + up) / n
            loss = (loss * (n - 1) + down) / n
        total = gain + loss
        out[i] = 100 * gain / total if total != 0 else Decimal(0)
    return out


def dmi(highs, lows, closes, n):
    pdi_out, mdi_out, adx_out = [None] * len(closes), [None] * len(closes), [None] * len(closes)
    pdm = mdm = tr = dx_sum = adx = Decimal(0)
    ph = pl = pc = None
    for i, (h, l, c) in enumerate(zip(highs, lows, closes)):
        if i == 0:
            ph, pl, pc = h, l, c
            continue
        diff_p = h - ph
        diff_m = pl - l
        is_minus = diff_m > 0 and diff_p < diff_m
        is_plus = not is_minus and diff_p > 0 and diff_p > diff_m
        minus = diff_m if is_minus else Decimal(0)
        plus = diff_p if is_plus else Decimal(0)
        r = max(h - l, abs(h - pc), abs(l - pc))
        ph, pl, pc = h, l, c
        if i < n:
            pdm += plus
            mdm += minus
            tr += r
            continue
        pdm = pdm - pdm / n + plus
        mdm = mdm - mdm / n + minus
        tr = tr - tr / n + r
        pdi = mdi = dx = Decimal(0)
        defined = False
        if tr != 0:
            pdi = 100 * pdm / tr
            mdi = 100 * mdm / tr
            s = pdi + mdi
            if s != 0:
                dx = 100 * abs(mdi - pdi) / s
                defined = True
        pdi_out[i], mdi_out[i] = pdi, mdi
        if i < 2 * n - 1:
            dx_sum += dx
            continue
        if i == 2 * n - 1:
            adx = (dx_sum + dx) / n
        elif defined:
            adx = (adx * (n - 1) + dx) / n
        adx_out[i] = adx
    return pdi_out, mdi_out, adx_out


def main():
    n = int(sys.argv[1])
    rows = [line.strip().split(",") for line in sys.stdin if line.strip()]
    highs = [Decimal(r[0]) for r in rows]
    lows = [Decimal(r[1]) for r in rows]
    closes = [Decimal(r[2]) for r in rows]
    r = rsi(closes, n)
    p, m, a = dmi(highs, lows, closes, n)
    cell = lambda v: "" if v is None else format(v, ".17g")
    for i in range(len(rows)):
        print(",".join(cell(v) for v in (r[i], p[i], m[i], a[i])))


if __name__ == "__main__":
    main()
