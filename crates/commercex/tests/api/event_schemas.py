"""Validates events against their published JSON Schemas with the Python `jsonschema` package
(draft 2020-12), not with CommerceX's own code. Reads one JSON object per line on stdin:
{"schema": {...}, "event": {...}}; prints "ok" or the first error per event, and exits 1 if
any failed."""

import json
import sys

try:
    from jsonschema import Draft202012Validator, FormatChecker
except ImportError:
    print("MISSING: pip install jsonschema", flush=True)
    sys.exit(3)

failed = False
for line in sys.stdin:
    item = json.loads(line)
    schema, event = item["schema"], item["event"]
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(event["data"]), key=lambda e: list(e.path))
    if errors:
        failed = True
        print(f"failed: {event['type']} {event['id']}: {errors[0].message} at {list(errors[0].path)}")
    else:
        print("ok")
sys.exit(1 if failed else 0)
