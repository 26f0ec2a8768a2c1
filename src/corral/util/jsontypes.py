"""``isinstance`` tuples for walking decoded JSON.

A union written in the call (``isinstance(v, dict | list)``) builds a new
``types.UnionType`` every time it runs, which costs 2-4 times the check itself, and the
per-node walks of every write (the schema's type check, managedFields, the body's depth
check, status ownership) make that check once per node. These tuples are built once.
"""

#: a JSON object or array: what a walk descends into
NESTED = (dict, list)
#: a JSON number (``bool`` is an ``int`` too: callers that mind exclude it first)
NUMBER = (int, float)
#: a JSON string or number
STR_OR_NUMBER = (str, int, float)
#: a JSON scalar other than null
SCALAR = (str, int, float, bool)
