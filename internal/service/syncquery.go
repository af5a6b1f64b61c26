package service

import "github.com/ganeti-gateway/ganeti-gateway/internal/errs"

// msgSyncQuery is the text of Ganeti's answer to a locking read: luxid
// refuses it with OpPrereqError("Sync queries are not allowed",
// ECODE_INVAL), whose Python text the RAPI daemon sends.
const msgSyncQuery = "('Sync queries are not allowed', 'wrong_input')"

// refuseSyncQuery answers ?lock=1 on the reads whose request has a lock
// argument (Ganeti's useLocking: instances, an instance, a node, its role,
// a group, a network). Ganeti 3.0.2 checks it before looking the object up
// and answers 500; it is a client mistake, so 400 here (README,
// deliberate differences).
func refuseSyncQuery(lock bool) error {
	if lock {
		return errs.BadRequest("%s", msgSyncQuery)
	}
	return nil
}
