package rota

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditEntry is one administrative change: who made it, where, what it was done to and, where
// it matters, the changed fields before and after.
type AuditEntry struct {
	// ID is unique, and with At the entry's place in the log (newest first); 16 hex digits.
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// Tenant is the tenant the change was made in (for a server-wide change such as
	// maintenance mode, the tenant of whoever made it).
	Tenant string `json:"tenant"`
	// Actor is who: "key:<key id>", "jwt:<subject>", "session:<key id>" (the dashboard), or
	// "system:<what>" for the server itself.
	Actor string `json:"actor"`
	// Action is what, as "<object>.<verb>": "key.create", "queue.update", "task.cancel", ...
	Action string `json:"action"`
	// Target is what it was done to: "keys/<id>", "queues/<name>", "tasks/<id>", ...
	Target string `json:"target"`
	// Before is the changed fields as they were (a JSON object), where it matters (settings,
	// roles, limits); nil when the entry has none.
	Before json.RawMessage `json:"before"`
	// After is what was asked (a JSON object): the new settings, the role's rules, the change
	// to a task; nil when the entry has none.
	After json.RawMessage `json:"after"`
	// RequestID is the request's X-Request-Id.
	RequestID *string `json:"request_id"`
	// Source is the address the request came from.
	Source *string `json:"source"`
}

// AuditList is one page of the audit log, newest first.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
	// NextCursor fetches the next (older) page as AuditOptions.Cursor; nil on the last page.
	NextCursor *string `json:"next_cursor"`
}

// AuditOptions filters and pages the audit log; every field is optional (its zero value is
// no filter).
type AuditOptions struct {
	// Tenant is only this tenant's entries. An admin reads every tenant's without it; anyone
	// else only their own tenant's (another tenant's is a 403).
	Tenant string
	// Actor is only changes by this actor ("key:<id>", "jwt:<subject>").
	Actor string
	// Action is only this action ("key.create"), or every action of an object when it ends
	// with a dot ("key.").
	Action string
	// Target is only changes to this target ("queues/emails", "keys/<id>").
	Target string
	// Since is only entries at or after this time.
	Since time.Time
	// Until is only entries before this time.
	Until time.Time
	// Cursor is the previous page's NextCursor.
	Cursor string
	// Limit is the page size, 1 to 500; 0 is the server's default (100).
	Limit int
}

// Audit reads one page of the audit log (every administrative change), newest first; pass the
// page's NextCursor as opts.Cursor for the next. It needs audit:read (the admin and
// tenant-admin roles).
func (c *Client) Audit(ctx context.Context, opts AuditOptions) (*AuditList, error) {
	q := url.Values{}
	set(q, "tenant", opts.Tenant)
	set(q, "actor", opts.Actor)
	set(q, "action", opts.Action)
	set(q, "target", opts.Target)
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.UTC().Format(time.RFC3339Nano))
	}
	if !opts.Until.IsZero() {
		q.Set("until", opts.Until.UTC().Format(time.RFC3339Nano))
	}
	set(q, "cursor", opts.Cursor)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out AuditList
	if err := c.call(ctx, http.MethodGet, "/v1/audit", q, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
