"""Field validation shared by every kind: names, labels, annotations, object metadata.

Pure helpers with the exact wording of Kubernetes' ``apimachinery/pkg/util/validation``
and ``apimachinery/pkg/api/validation`` (``ValidateObjectMeta``), because clients and
users read these messages verbatim. ``is_*`` functions return the bare message strings
(as the Go ``Is*`` functions do); ``validate_*`` functions return ``FieldError`` lists.

Callers: ``Strategy.validate_metadata`` (every write) and the per-kind strategies in
``corral.apiserver.registry``. The ``go_*`` helpers render values the way Go's ``%#v``
prints them inside ``Invalid value: ...`` (``map[string]string{"app":"x"}``...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from corral.api.errors import FieldError, forbidden, invalid, not_supported, required, too_long
from corral.util.jsontypes import NUMBER

# --- message building (apimachinery util/validation) -----------------------------------


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """``RegexError``: note the doubled space before ``or`` that upstream produces."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


EMPTY_ERROR = "must be non-empty"
NEGATIVE_ERROR = "must be greater than or equal to 0"
IMMUTABLE_ERROR = "field is immutable"

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
ENV_VAR_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit"
)
PERCENT_FMT = "[0-9]+%"
PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"

_DNS1123_LABEL = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY = re.compile(f"^{CONFIG_KEY_FMT}$")
_ENV_VAR = re.compile(f"^{ENV_VAR_FMT}$")
_PERCENT = re.compile(f"^{PERCENT_FMT}$")
_PORT_NAME_CHARS = re.compile("^[-a-z0-9]+$")
_HAS_LETTER = re.compile("[a-z]")


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL.match(value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """``IsQualifiedName``: ``[prefix/]name`` as used for label and annotation keys."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME.match(name):
        errs.append(
            "name part "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    """Keys of ConfigMap/Secret ``data`` and ``binaryData``."""
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY.match(value):
        errs.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix(value)


def is_env_var_name(value: str) -> list[str]:
    errs: list[str] = []
    if not _ENV_VAR.match(value):
        errs.append(
            regex_error(ENV_VAR_MSG, ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1")
        )
    return errs + _chdir_prefix(value)


def is_valid_port_num(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARS.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    if not _PERCENT.match(value):
        return [regex_error(PERCENT_MSG, PERCENT_FMT, "1%", "93%")]
    return []


def is_valid_path_segment_name(name: str) -> list[str]:
    """Names that only need to be usable as one URL path segment (``path`` format)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    errs: list[str] = []
    for bad in ("/", "%"):
        if bad in name:
            errs.append(f"may not contain '{bad}'")
    return errs


# --- Go %#v rendering for Invalid values -------------------------------------------------


def _go_quote(s: str) -> str:
    return orjson.dumps(s).decode()


def go_string_map_text(m: Mapping[str, Any] | None) -> str:
    if m is None:
        return "map[string]string(nil)"
    body = ", ".join(f"{_go_quote(k)}:{_go_quote(str(v))}" for k, v in sorted(m.items()))
    return "map[string]string{" + body + "}"


def go_string_map(m: Mapping[str, Any] | None) -> orjson.Fragment:
    """``map[string]string{"a":"b"}`` as the value of an ``invalid()`` error."""
    return orjson.Fragment(go_string_map_text(m))


def go_intstr(value: Any) -> orjson.Fragment:
    """An ``intstr.IntOrString`` the way field errors print it."""
    if isinstance(value, str):
        return orjson.Fragment(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{_go_quote(value)}}}")
    return orjson.Fragment(f'intstr.IntOrString{{Type:0, IntVal:{int(value or 0)}, StrVal:""}}')


def go_label_selector(sel: Mapping[str, Any] | None) -> orjson.Fragment:
    """A ``metav1.LabelSelector`` the way field errors print it."""
    if sel is None:
        return orjson.Fragment("null")
    exprs = sel.get("matchExpressions")
    if exprs is None:
        expr_text = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for e in exprs:
            vals = e.get("values")
            vals_text = (
                "[]string(nil)"
                if vals is None
                else "[]string{" + ", ".join(_go_quote(str(v)) for v in vals) + "}"
            )
            items.append(
                f"v1.LabelSelectorRequirement{{Key:{_go_quote(str(e.get('key', '')))}, "
                f"Operator:{_go_quote(str(e.get('operator', '')))}, Values:{vals_text}}}"
            )
        expr_text = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return orjson.Fragment(
        f"v1.LabelSelector{{MatchLabels:{go_string_map_text(sel.get('matchLabels'))}, "
        f"MatchExpressions:{expr_text}}}"
    )


# --- field-level validators --------------------------------------------------------------


def validate_nonnegative(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, NUMBER) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, NEGATIVE_ERROR)]
    return []


def validate_positive(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, NUMBER) and not isinstance(value, bool) and value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def validate_dns1123_label(value: Any, path: str) -> list[FieldError]:
    """Required, then a DNS-1123 label (container, port and volume names)."""
    if not value:
        return [required(path)]
    return [invalid(path, value, m) for m in is_dns1123_label(str(value))]


def validate_qualified_name(value: str, path: str) -> list[FieldError]:
    return [invalid(path, value, m) for m in is_qualified_name(value)]


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    """``ValidateLabels``: every error points at the map itself (``metadata.labels``)."""
    errs: list[FieldError] = []
    if not isinstance(labels, dict):
        return errs
    for k, v in labels.items():
        errs.extend(invalid(path, k, m) for m in is_qualified_name(k))
        if not isinstance(v, str):
            errs.append(invalid(path, v, "label values must be strings"))
            continue
        errs.extend(invalid(path, v, m) for m in is_valid_label_value(v))
    return errs


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(annotations, dict):
        return errs
    total = 0
    for k, v in annotations.items():
        errs.extend(invalid(path, k, m) for m in is_qualified_name(k.lower()))
        total += len(k) + len(str(v) if v is not None else "")
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(refs, list):
        return errs
    controllers: list[str] = []
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        for key, what in (
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ):
            if not ref.get(key):
                errs.append(invalid(f"{path}.{key}", "", f"{what} must not be empty"))
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind', '')}/{ref.get('name', '')}")
    if len(controllers) > 1:
        text = "[]string{" + ", ".join(_go_quote(c) for c in controllers) + "}"
        errs.append(
            invalid(
                path,
                orjson.Fragment(text),
                'Only one reference can have Controller set to true. Found "true" in '
                "references for " + " and ".join(controllers),
            )
        )
    return errs


def validate_finalizers(finalizers: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(finalizers, list):
        return errs
    for f in finalizers:
        errs.extend(invalid(path, f, m) for m in is_qualified_name(str(f)))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(
            invalid(
                path,
                orjson.Fragment(
                    "[]string{" + ", ".join(_go_quote(str(f)) for f in finalizers) + "}"
                ),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    return errs


_NAME_CHECKS = {
    "subdomain": is_dns1123_subdomain,
    "label": is_dns1123_label,
    "path": is_valid_path_segment_name,
}


def name_errors(name: str, name_format: str, prefix: bool = False) -> list[str]:
    """Messages for ``name`` in the given format; a generateName prefix may end in '-'."""
    if prefix and name_format != "path" and name.endswith("-"):
        name = name[:-1] + "a"
    return _NAME_CHECKS[name_format](name)


def validate_object_meta(
    meta: dict[str, Any], namespaced: bool, name_format: str
) -> list[FieldError]:
    """``ValidateObjectMeta`` for a new or updated object's ``metadata``."""
    errs: list[FieldError] = []
    name = meta.get("name") or ""
    gen_name = meta.get("generateName") or ""
    if gen_name:
        errs.extend(
            invalid("metadata.generateName", gen_name, m)
            for m in name_errors(gen_name, name_format, prefix=True)
        )
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs.extend(invalid("metadata.name", name, m) for m in name_errors(name, name_format))
    ns = meta.get("namespace") or ""
    if namespaced:
        if not ns:
            errs.append(required("metadata.namespace"))
        else:
            errs.extend(invalid("metadata.namespace", ns, m) for m in is_dns1123_label(ns))
    elif ns:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    errs.extend(validate_nonnegative(meta.get("generation"), "metadata.generation"))
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), "metadata.annotations"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences"))
    errs.extend(validate_finalizers(meta.get("finalizers"), "metadata.finalizers"))
    return errs


# --- label selectors ---------------------------------------------------------------------

SELECTOR_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"]


def validate_label_selector(sel: Any, path: str) -> list[FieldError]:
    """``ValidateLabelSelector`` (matchLabels and matchExpressions)."""
    errs: list[FieldError] = []
    if not isinstance(sel, dict):
        return errs
    errs.extend(validate_labels(sel.get("matchLabels"), f"{path}.matchLabels"))
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = expr.get("operator", "")
        values = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(
                    required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
                )
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(
                    forbidden(
                        f"{p}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        errs.extend(validate_qualified_name(str(expr.get("key", "")), f"{p}.key"))
        for j, v in enumerate(values):
            errs.extend(invalid(f"{p}.values[{j}]", v, m) for m in is_valid_label_value(str(v)))
    return errs


def label_selector_is_empty(sel: Mapping[str, Any] | None) -> bool:
    return not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions"))


def label_selector_matches(sel: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a ``LabelSelector`` matches ``labels`` (an empty selector matches all)."""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def validate_enum(value: Any, path: str, supported: list[str]) -> list[FieldError]:
    """``Unsupported value`` unless ``value`` is one of ``supported`` (kept in upstream order)."""
    if value not in supported:
        return [not_supported(path, value if value is not None else "", supported)]
    return []


def validate_immutable(new: Any, old: Any, path: str, value: Any = None) -> list[FieldError]:
    if new != old:
        return [invalid(path, new if value is None else value, IMMUTABLE_ERROR)]
    return []
