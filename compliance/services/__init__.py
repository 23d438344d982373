"""The audit log's services, by sub-domain; the public names are importable from here.

- ``audit``: recording (``audit_record`` is the one way in), change sets, reads and exports;
- ``sources``: events announced by other code (security events, accounts' changes,
  back-office changes, refused requests);
- ``retention``: the purge with its checkpoints, and the alerts of chain verification;
- ``do_not_call``: the organization's do-not-call list (add, ensure, remove; audited).
"""

from compliance.services.audit import (  # noqa: F401
    audit_changes,
    audit_record,
    audit_record_export,
    audit_record_read,
    audit_snapshot,
)
from compliance.services.do_not_call import do_not_call_add, do_not_call_ensure, do_not_call_remove  # noqa: F401
from compliance.services.retention import (  # noqa: F401
    PurgeResult,
    audit_chain_ids,
    audit_chain_verify_and_alert,
    audit_chains_verify_and_alert,
    audit_purge_expired,
)
from compliance.services.sources import (  # noqa: F401
    audit_record_activity,
    audit_record_admin_change,
    audit_record_denial,
    audit_record_failure_summaries,
    audit_record_security_event,
    audit_record_webhook_refused,
)
