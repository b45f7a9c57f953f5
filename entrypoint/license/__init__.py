"""Contract-priced products: entitlement through AWS License Manager.

* `contract` - the product's contract configuration in the keys directory (pure parsing);
* `answers` - what each License Manager answer means (pure classification and judgement);
* `client` - one License Manager call through botocore, endpoint and CA bundle pinned;
* `checkout` - a checkout with retries and its check-in, as a start performs them;
* `lease` - `LicenseLease`, the in-process lease that re-checks, extends and checks in.

This package's ``__init__`` imports nothing, so that `entrypoint.keys` can load a contract
configuration without importing the SDK.
"""

from __future__ import annotations
