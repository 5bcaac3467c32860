"""space.py: the sweep file of launch/sweep.sh: reading it, checking its shape, and turning its
search space into the list of trials.

A sweep file (YAML; the format is in docs/operations.md, section Sweeps):

  base: configs/multdae/quickstart.yaml      # the config every trial starts from
  out: runs/sweeps/quickstart-multdae        # the sweep directory (optional)
  fixed: {train.epochs: 10}                  # overrides of every trial (not in the names)
  space:                                     # one entry per swept config key
    multdae.latent_dim: [50, 100, 200]       # a list: grid values (random search: a choice)
    train.lr: {loguniform: [0.0003, 0.01]}   # uniform, loguniform, int_uniform, int_loguniform, choice
  search: {method: random, trials: 12, seed: 1}
  halving: {eta: 3, min_epochs: 2, max_epochs: 18}   # defaults of --halving

Only the shape is checked here (names of sections, distributions, bounds, counts); whether a key
exists and a value is in its range is the trainer's to say (`recvae_dist --check`, sweep.py).
Every error is a SweepError whose message names the key it is about.
"""

import hashlib
import itertools
import math
import random
import re

import yaml

SECTIONS = ("base", "out", "fixed", "space", "search", "halving", "description")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int_uniform", "int_loguniform")
# Keys the runner sets itself for every trial; a sweep file may not set them.
RUNNER_KEYS = ("output.dir", "output.auto_resume")
SIGNIFICANT_DIGITS = 4  # random draws of real values are rounded to this many digits
MAX_NAME = 120          # longest trial directory name before it is shortened with a hash


class SweepError(Exception):
    """A sweep file (or command line) the runner refuses; the message names the key."""


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads 1e-05 (no dot) as a number, as the trainer's YAML
    reader (yaml-cpp) does; PyYAML's YAML 1.1 rules would make it a string."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml_text(text):
    return yaml.load(text, Loader=Loader)


def format_value(value):
    """A value as the text of `--set key=TEXT`: YAML flow style without spaces (the Slurm
    template splits RECVAE_SET on spaces), floats with the fewest digits that read back equal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SweepError("value %r is not a finite number" % value)
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    raise SweepError("value %r: only numbers, booleans, strings and lists can be swept" % (value,))


def round_significant(x, digits=SIGNIFICANT_DIGITS):
    return float("%.*g" % (digits, x))


class Param:
    """One swept key: a finite list of values, or a distribution to draw from."""

    def __init__(self, key, spec):
        self.key = key
        self.kind = None      # "list" or one of DISTRIBUTIONS
        self.values = None    # list / choice values
        self.low = self.high = None
        if isinstance(spec, list):
            self.kind, self.values = "list", spec
        elif isinstance(spec, dict):
            if len(spec) != 1:
                raise SweepError("space key '%s': give one distribution (%s), got %s"
                                 % (key, ", ".join(DISTRIBUTIONS), ", ".join(map(str, spec)) or "none"))
            (self.kind, arg), = spec.items()
            if self.kind not in DISTRIBUTIONS:
                raise SweepError("space key '%s': unknown distribution '%s' (known: %s)"
                                 % (key, self.kind, ", ".join(DISTRIBUTIONS)))
            if self.kind == "choice":
                if not isinstance(arg, list):
                    raise SweepError("space key '%s': choice takes a list of values" % key)
                self.values = arg
            else:
                self._bounds(arg)
        else:
            raise SweepError("space key '%s': a single value (%r) is not a search space; put it "
                             "under fixed:, or give a list or a distribution" % (key, spec))
        if self.values is not None:
            if not self.values:
                raise SweepError("space key '%s': empty list of values" % key)
            texts = [format_value(v) for v in self.values]
            if len(set(texts)) != len(texts):
                raise SweepError("space key '%s': a value is listed twice" % key)

    def _bounds(self, arg):
        key, kind = self.key, self.kind
        if (not isinstance(arg, list) or len(arg) != 2 or
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arg)):
            raise SweepError("space key '%s': %s takes [low, high], two numbers" % (key, kind))
        low, high = arg
        if not low < high:
            raise SweepError("space key '%s': %s needs low < high, got [%r, %r]" % (key, kind, low, high))
        if kind.startswith("int_") and not all(float(v).is_integer() for v in arg):
            raise SweepError("space key '%s': %s takes whole numbers, got [%r, %r]" % (key, kind, low, high))
        if kind.endswith("loguniform") and low <= 0:
            raise SweepError("space key '%s': %s needs low > 0, got %r" % (key, kind, low))
        if kind.startswith("int_"):
            low, high = int(low), int(high)
        self.low, self.high = low, high

    @property
    def log_scale(self):
        return self.kind.endswith("loguniform")

    def grid_values(self):
        if self.values is None:
            raise SweepError("space key '%s': a grid search needs a list of values, not %s "
                             "(use search: {method: random, trials: N})" % (self.key, self.kind))
        return list(self.values)

    def extremes(self):
        """The values whose validity stands for all: every listed value, or both bounds."""
        if self.values is not None:
            return list(self.values)
        return [self.low, self.high]

    def edge(self, value, margin=0.05):
        """Where `value` sits at an end of this key's space, in words ("the largest listed value",
        "the lowest 5% of the range"), else None. A list counts when it has three or more numbers
        (two values have no inside); a range, when the value lies within `margin` of an end (on the
        log scale for loguniform). A winner there may be short of the optimum: widen the space."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if self.values is not None:
            numbers = [v for v in self.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if self.kind != "list" or len(numbers) != len(self.values) or len(numbers) < 3:
                return None
            if value == min(numbers):
                return "the smallest listed value"
            if value == max(numbers):
                return "the largest listed value"
            return None
        low, high, x = float(self.low), float(self.high), float(value)
        if self.log_scale:
            low, high, x = math.log(low), math.log(high), math.log(max(x, float(self.low)))
        where = (x - low) / (high - low)
        if where <= margin:
            return "the lowest %d%% of the range" % round(100 * margin)
        if where >= 1 - margin:
            return "the highest %d%% of the range" % round(100 * margin)
        return None

    def draw(self, rng):
        if self.values is not None:
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "uniform":
            return round_significant(rng.uniform(self.low, self.high))
        if self.kind == "loguniform":
            return round_significant(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.kind == "int_uniform":
            return rng.randint(self.low, self.high)
        # int_loguniform: log-uniform over [low, high + 1), rounded down
        x = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
        return min(self.high, int(x))


class Trial:
    """One point of the space: its index (the Slurm array index), name and overrides."""

    def __init__(self, index, overrides, names):
        self.index = index
        self.overrides = overrides  # {key: value}, in the space's key order
        self.name = trial_name(overrides, names)

    def set_args(self):
        return ["%s=%s" % (k, format_value(v)) for k, v in self.overrides.items()]


def short_names(keys):
    """The last component of each key (lr, latent_dim), or more of it where two keys would share
    a name (multdae.l2 and cdae.l2 keep their section)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            candidate = ".".join(parts[-n:])
            others = [k for k in keys if k != key and (k == candidate or k.endswith("." + candidate))]
            if not others:
                names[key] = candidate
                break
        else:
            names[key] = key
    return names


def trial_name(overrides, names):
    """A filesystem-safe directory name: `latent_dim=200,lr=0.001`; characters outside
    [A-Za-z0-9._=,+-] become '_'; a very long name is cut and given a hash of the whole."""
    text = ",".join("%s=%s" % (names[k], format_value(v)) for k, v in overrides.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    if safe.startswith(".") or safe.startswith("-"):
        safe = "_" + safe[1:]
    if len(safe) > MAX_NAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        safe = safe[:MAX_NAME - 11] + "~" + digest
    return safe


def _mapping(doc, section, default):
    value = doc.get(section, default)
    if value is None:
        return default
    if not isinstance(value, dict):
        raise SweepError("sweep key '%s': expected a mapping, got %s" % (section, type(value).__name__))
    return value


def _check_key(where, key):
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+", key):
        raise SweepError("%s key '%s': not a config key of the form section.key" % (where, key))
    if key in RUNNER_KEYS:
        raise SweepError("%s key '%s': set by the sweep runner for every trial; leave it out" % (where, key))


def _whole(section, key, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SweepError("%s key '%s': a whole number >= %d, got %r" % (section, key, minimum, value))
    return value


class Sweep:
    """A parsed sweep file: base config path, fixed overrides, the space and the search."""

    def __init__(self, doc, origin):
        if not isinstance(doc, dict):
            raise SweepError("%s: a sweep file is a YAML mapping (base:, space:, ...)" % origin)
        for section in doc:
            if section not in SECTIONS:
                raise SweepError("sweep key '%s': unknown (known: %s)" % (section, ", ".join(SECTIONS)))
        self.origin = origin
        self.base = doc.get("base")
        if not isinstance(self.base, str) or not self.base:
            raise SweepError("sweep key 'base': the path of the config every trial starts from is required")
        self.out = doc.get("out")
        if self.out is not None and not isinstance(self.out, str):
            raise SweepError("sweep key 'out': a directory path")
        self.description = doc.get("description", "")
        self.fixed = dict(_mapping(doc, "fixed", {}))
        for key, value in self.fixed.items():
            _check_key("fixed", key)
            format_value(value)
        space = _mapping(doc, "space", {})
        if not space:
            raise SweepError("sweep key 'space': empty: give at least one config key to sweep")
        self.params = []
        for key, spec in space.items():
            _check_key("space", key)
            if key in self.fixed:
                raise SweepError("space key '%s': also under fixed:; give it in one place" % key)
            self.params.append(Param(key, spec))
        search = _mapping(doc, "search", {})
        for key in search:
            if key not in ("method", "trials", "seed"):
                raise SweepError("search key '%s': unknown (known: method, trials, seed)" % key)
        all_lists = all(p.values is not None for p in self.params)
        self.method = search.get("method", "grid" if all_lists and "trials" not in search else "random")
        if self.method not in ("grid", "random"):
            raise SweepError("search key 'method': grid or random, got %r" % (self.method,))
        self.seed = _whole("search", "seed", search.get("seed", 1), 0)
        self.trials = search.get("trials")
        if self.method == "random":
            if self.trials is None:
                raise SweepError("search key 'trials': a random search needs the number of trials")
            _whole("search", "trials", self.trials, 1)
        elif self.trials is not None:
            raise SweepError("search key 'trials': a grid search runs every point of the grid; "
                             "leave trials out (or use method: random)")
        self.halving = dict(_mapping(doc, "halving", {}))
        for key, value in self.halving.items():
            if key not in ("eta", "min_epochs", "max_epochs"):
                raise SweepError("halving key '%s': unknown (known: eta, min_epochs, max_epochs)" % key)
            _whole("halving", key, value, 2 if key == "eta" else 1)

    @property
    def keys(self):
        return [p.key for p in self.params]

    def param(self, key):
        return next(p for p in self.params if p.key == key)

    def make_trials(self, limit=None):
        """The trials; `limit` (random search only): the first `limit` draws instead of `trials`
        (the same points and names as in the full sweep, so their directories are shared)."""
        if limit is not None:
            if self.method != "random":
                raise SweepError("--trials: a grid search runs every point of the grid")
            self.trials = limit
        names = short_names(self.keys)
        if self.method == "grid":
            grids = [p.grid_values() for p in self.params]
            points = [dict(zip(self.keys, combo)) for combo in itertools.product(*grids)]
        else:
            rng = random.Random(self.seed)
            points, seen = [], set()
            attempts = 0
            while len(points) < self.trials:
                point = {p.key: p.draw(rng) for p in self.params}
                signature = tuple(format_value(v) for v in point.values())
                attempts += 1
                if signature in seen:
                    if attempts > 1000 * self.trials:
                        raise SweepError("search key 'trials': the space has only %d distinct points, "
                                         "fewer than the %d trials asked for" % (len(points), self.trials))
                    continue
                seen.add(signature)
                points.append(point)
        trials = [Trial(i, point, names) for i, point in enumerate(points)]
        by_name = {}
        for t in trials:
            if t.name in by_name:
                raise SweepError("space: trials %d and %d get the same directory name '%s'"
                                 % (by_name[t.name], t.index, t.name))
            by_name[t.name] = t.index
        return trials


def read_sweep(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = load_yaml_text(f.read())
    except OSError as e:
        raise SweepError("cannot read the sweep file %s: %s" % (path, e.strerror))
    except yaml.YAMLError as e:
        raise SweepError("%s is not valid YAML: %s" % (path, str(e).replace("\n", " ")))
    return Sweep(doc, path)


def parse_set(text):
    """`key=value` of a --set option: (key, value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SweepError("--set '%s': expected section.key=value" % text)
    _check_key("--set", key)
    try:
        parsed = load_yaml_text(value) if value != "" else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed
