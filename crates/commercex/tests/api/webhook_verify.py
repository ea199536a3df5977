"""Verifies webhook deliveries with the Standard Webhooks reference library (PyPI
`standardwebhooks`), not with CommerceX's own code. Reads one JSON object per line on stdin:
{"secret": "whsec_...", "headers": {...}, "body": "..."}; prints one line per delivery,
"ok" or the library's error, and exits 1 if any failed."""

import json
import sys

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    print("MISSING: pip install standardwebhooks", flush=True)
    sys.exit(3)

failed = False
for line in sys.stdin:
    delivery = json.loads(line)
    try:
        Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
        print("ok")
    except Exception as error:  # the library raises its own error types
        failed = True
        print(f"failed: {type(error).__name__}: {error}")
sys.exit(1 if failed else 0)
