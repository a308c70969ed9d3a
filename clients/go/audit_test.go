package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// apart is left between changes whose order a test checks: entries of the same millisecond
// are ordered by their (random) ids.
const apart = 10 * time.Millisecond

var auditID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// adminActor is the admin's own actor, "key:<its key id>", from WhoAmI's "key <id>".
func adminActor(ctx context.Context, t *testing.T, c *rota.Client) string {
	t.Helper()
	me, err := c.WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(me.Principal, "key ")
	if id == me.Principal || id == "" {
		t.Fatalf("the admin's principal %q", me.Principal)
	}
	return "key:" + id
}

// auditPage reads one page of the audit log, failing the test on an error.
func auditPage(ctx context.Context, t *testing.T, c *rota.Client, opts rota.AuditOptions) *rota.AuditList {
	t.Helper()
	page, err := c.Audit(ctx, opts)
	if err != nil {
		t.Fatalf("Audit(%+v): %v", opts, err)
	}
	return page
}

func entryIDs(entries []rota.AuditEntry) string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return strings.Join(ids, ",")
}

// fields decodes an entry's Before or After.
func fields(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return out
}

// auditRefused asserts that err is the server's answer with this status and code.
func auditRefused(t *testing.T, err error, status int, code string) *rota.Error {
	t.Helper()
	var apiErr *rota.Error
	if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
	return apiErr
}

// S22: the audit log. The admin's changes (a queue's settings, a pause, a new key) are read
// back newest first with who made them, what they were done to and the settings before and
// after; filters by action prefix, target, time and tenant; pages of one followed through
// NextCursor give each entry once; a producer's key gets 403 and a limit out of range a 422.
func TestS22AuditLog(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	actor := adminActor(ctx, t, c)
	queue := queueName(t)
	if _, err := c.UpdateQueue(ctx, queue, rota.QueuePatch{MaxAttempts: rota.Ptr(7)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(apart)
	if _, err := c.PauseQueue(ctx, queue); err != nil {
		t.Fatal(err)
	}
	time.Sleep(apart)
	key, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{"producer"}, Name: "s22-producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = c.RevokeKey(ctx, key.ID) }()

	// The queue's two entries, newest first, and the key's.
	target := "queues/" + queue
	page := auditPage(ctx, t, c, rota.AuditOptions{Target: target})
	if page.NextCursor != nil || len(page.Entries) != 2 {
		t.Fatalf("the queue's entries: %+v", page)
	}
	paused, updated := page.Entries[0], page.Entries[1]
	if paused.Action != "queue.pause" || updated.Action != "queue.update" {
		t.Fatalf("actions %q, %q", paused.Action, updated.Action)
	}
	for _, e := range page.Entries {
		if e.Actor != actor || e.Tenant != "default" || e.Target != target || !auditID.MatchString(e.ID) {
			t.Errorf("entry %+v", e)
		}
		if e.RequestID == nil || *e.RequestID == "" || e.Source == nil || *e.Source == "" {
			t.Errorf("entry %s lacks its request id or source", e.ID)
		}
	}
	if got := fields(t, updated.After)["max_attempts"]; got != 7.0 {
		t.Errorf("after: max_attempts %v", got)
	}
	if got := fields(t, updated.Before)["max_attempts"]; got != 25.0 {
		t.Errorf("before: max_attempts %v, want the default 25", got)
	}
	if !paused.At.After(updated.At) {
		t.Errorf("paused at %s, updated at %s", paused.At, updated.At)
	}
	keyPage := auditPage(ctx, t, c, rota.AuditOptions{Target: "keys/" + key.ID})
	if len(keyPage.Entries) != 1 {
		t.Fatalf("the key's entries: %+v", keyPage.Entries)
	}
	created := keyPage.Entries[0]
	if created.Action != "key.create" || created.Actor != actor || !created.At.After(paused.At) {
		t.Errorf("key entry %+v", created)
	}
	after := fields(t, created.After)
	if roles, _ := after["roles"].([]any); len(roles) != 1 || roles[0] != "producer" || after["name"] != "s22-producer" {
		t.Errorf("key entry's after %v", after)
	}
	if _, ok := after["token"]; ok {
		t.Error("the key's token is in the audit log")
	}

	// The exact action, and every action of an object (a trailing dot).
	if got := entryIDs(auditPage(ctx, t, c, rota.AuditOptions{Action: "queue.update", Target: target}).Entries); got != updated.ID {
		t.Errorf("queue.update: %s", got)
	}
	prefixed := auditPage(ctx, t, c, rota.AuditOptions{Action: "queue.", Actor: actor, Limit: 500}).Entries
	seenPrefixed := map[string]bool{}
	for _, e := range prefixed {
		seenPrefixed[e.ID] = true
		if !strings.HasPrefix(e.Action, "queue.") {
			t.Errorf("action queue. read %q", e.Action)
		}
	}
	if !seenPrefixed[paused.ID] || !seenPrefixed[updated.ID] || seenPrefixed[created.ID] {
		t.Errorf("action queue.: %s", entryIDs(prefixed))
	}
	// The admin's own tenant by name; none from a tenant without entries.
	if got := entryIDs(auditPage(ctx, t, c, rota.AuditOptions{Tenant: "default", Target: target}).Entries); got != paused.ID+","+updated.ID {
		t.Errorf("tenant default: %s", got)
	}
	if got := auditPage(ctx, t, c, rota.AuditOptions{Tenant: "s22-no-such-tenant"}).Entries; len(got) != 0 {
		t.Errorf("a tenant without entries: %+v", got)
	}

	// Since is inclusive and Until exclusive.
	if got := entryIDs(auditPage(ctx, t, c, rota.AuditOptions{Target: target, Since: updated.At, Until: paused.At}).Entries); got != updated.ID {
		t.Errorf("since the update until the pause: %s", got)
	}
	if got := entryIDs(auditPage(ctx, t, c, rota.AuditOptions{Target: target, Since: updated.At.Add(time.Millisecond)}).Entries); got != paused.ID {
		t.Errorf("since just after the update: %s", got)
	}
	if got := auditPage(ctx, t, c, rota.AuditOptions{Target: target, Until: updated.At}).Entries; len(got) != 0 {
		t.Errorf("until the update: %+v", got)
	}

	// Pages of one, newest first, each entry once, until NextCursor is nil.
	whole := auditPage(ctx, t, c, rota.AuditOptions{Actor: actor, Since: updated.At, Limit: 500})
	if whole.NextCursor != nil || len(whole.Entries) < 3 {
		t.Fatalf("the admin's entries since the update: %+v", whole)
	}
	var seen []rota.AuditEntry
	opts := rota.AuditOptions{Actor: actor, Since: updated.At, Limit: 1}
	for i := 0; ; i++ {
		if i > len(whole.Entries) {
			t.Fatalf("the pages did not end after %d", i)
		}
		one := auditPage(ctx, t, c, opts)
		if len(one.Entries) != 1 {
			t.Fatalf("page %d: %+v", i, one.Entries)
		}
		seen = append(seen, one.Entries[0])
		if one.NextCursor == nil {
			break
		}
		opts.Cursor = *one.NextCursor
	}
	if entryIDs(seen) != entryIDs(whole.Entries) {
		t.Errorf("pages of one %s, one page %s", entryIDs(seen), entryIDs(whole.Entries))
	}
	once := map[string]bool{}
	for _, e := range seen {
		if once[e.ID] {
			t.Errorf("entry %s read twice", e.ID)
		}
		once[e.ID] = true
	}
	if !once[created.ID] || !once[paused.ID] || !once[updated.ID] {
		t.Errorf("the pages lack an entry: %s", entryIDs(seen))
	}

	// A producer lacks audit:read.
	_, err = newClient(t, rota.WithToken(key.Token)).Audit(ctx, rota.AuditOptions{})
	if refused := auditRefused(t, err, 403, rota.CodeForbidden); !strings.Contains(refused.Message, "audit:read") {
		t.Errorf("the producer's refusal: %v", refused)
	}
	// A limit over 500, and a cursor this server did not give: 422. (Limit 0 is the server's
	// default, as in ListOptions, so the library never sends limit=0.)
	_, err = c.Audit(ctx, rota.AuditOptions{Limit: 501})
	if bad := auditRefused(t, err, 422, rota.CodeInvalidField); !strings.Contains(bad.Message, "limit") {
		t.Errorf("limit 501: %v", bad)
	}
	_, err = c.Audit(ctx, rota.AuditOptions{Cursor: "not-a-cursor"})
	auditRefused(t, err, 422, rota.CodeInvalidField)
	if got := auditPage(ctx, t, c, rota.AuditOptions{Target: target, Limit: 0}); len(got.Entries) != 2 {
		t.Errorf("limit 0 (the server's default): %+v", got.Entries)
	}
}

// S22: a tenant-admin reads its own tenant's audit log, and gets 403 for another tenant's.
func TestS22TenantAdminReadsOnlyItsOwnTenant(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	queue := queueName(t)
	if _, err := c.UpdateQueue(ctx, queue, rota.QueuePatch{MaxAttempts: rota.Ptr(3)}); err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{"tenant-admin"}, Name: "s22-tenant-admin"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = c.RevokeKey(ctx, key.ID) }()
	tenantAdmin := newClient(t, rota.WithToken(key.Token))
	entries := auditPage(ctx, t, tenantAdmin, rota.AuditOptions{Target: "queues/" + queue}).Entries
	if len(entries) != 1 || entries[0].Action != "queue.update" || string(entries[0].After) != `{"max_attempts":3}` {
		t.Fatalf("the tenant-admin's read: %+v", entries)
	}
	_, err = tenantAdmin.Audit(ctx, rota.AuditOptions{Tenant: "s22-another-tenant"})
	auditRefused(t, err, 403, rota.CodeForbidden)
}
