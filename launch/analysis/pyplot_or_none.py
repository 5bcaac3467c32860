"""The one way the launch/analysis scripts get matplotlib: headless (Agg), or None with one line
on stderr that names the program, what is not drawn and how to get matplotlib."""
import sys


def pyplot_or_none(program, not_drawn=""):
    """matplotlib.pyplot with the Agg backend; None (after saying so) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("%s: matplotlib is missing%s; install it with `apt-get install python3-matplotlib` "
              "(or `pip install matplotlib`)" % (program, ", " + not_drawn if not_drawn else ""), file=sys.stderr)
        return None
