package rota_test

import (
	"strings"
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestS12AdminTenantsKeysRoles(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)

	// Tenants.
	name := strings.ToLower("t" + q[len(q)-8:])
	tenant, err := c.CreateTenant(ctx, rota.NewTenant{Name: name, EventRetentionMs: rota.Ptr(int64(3_600_000))})
	if err != nil {
		t.Fatal(err)
	}
	if tenant.Name != name || tenant.EventRetentionMs == nil || *tenant.EventRetentionMs != 3_600_000 {
		t.Fatalf("tenant %+v", tenant)
	}
	tenants, err := c.Tenants(ctx)
	if err != nil || !containsTenant(tenants, name) {
		t.Fatalf("tenants: %v", err)
	}
	patched, err := c.UpdateTenant(ctx, name, rota.TenantPatch{EventRetentionMs: rota.Clear[int64]()})
	if err != nil || patched.EventRetentionMs != nil {
		t.Fatalf("patch: %v %+v", err, patched)
	}
	// An admin acts in the new tenant; its queues are its own.
	inTenant := newClient(t, rota.WithTenant(name))
	if _, err := inTenant.Enqueue(ctx, q, rota.TaskInput{}); err != nil {
		t.Fatal(err)
	}
	if who, err := inTenant.WhoAmI(ctx); err != nil || who.ActingTenant != name {
		t.Fatalf("whoami in the tenant: %v %+v", err, who)
	}
	if _, err := c.GetQueue(ctx, q); !rota.IsNotFound(err) {
		t.Fatalf("another tenant's queue: %v", err)
	}

	// A custom role and a key limited to one queue.
	role := "s12-" + q[len(q)-8:]
	if _, err := c.PutRole(ctx, role, []rota.Rule{
		{Resource: "queues/*", Action: "tasks:enqueue", Effect: rota.Allow},
		{Resource: "queues/*", Action: "tasks:read", Effect: rota.Allow},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRole(ctx, role)
	if err != nil || got.Builtin || len(got.Rules) != 2 {
		t.Fatalf("role: %v %+v", err, got)
	}
	roles, err := c.Roles(ctx)
	if err != nil || len(roles) == 0 || roles[0].Name != "admin" || !roles[0].Builtin {
		t.Fatalf("roles: %v %+v", err, roles)
	}
	key, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{role}, Name: "s12", Queues: []string{q}})
	if err != nil {
		t.Fatal(err)
	}
	if key.Token == "" || key.Queues[0] != q {
		t.Fatalf("key %+v", key)
	}
	producer := newClient(t, rota.WithToken(key.Token))
	if _, err := producer.Enqueue(ctx, q, rota.TaskInput{}); err != nil {
		t.Fatalf("the key enqueues on its queue: %v", err)
	}
	if _, err := producer.Enqueue(ctx, q+"-other", rota.TaskInput{}); rota.ErrorCode(err) != rota.CodeForbidden {
		t.Fatalf("the key outside its queues: %v", err)
	}
	if _, err := producer.Claim(ctx, q, rota.ClaimOptions{Worker: "s12"}); rota.ErrorCode(err) != rota.CodeForbidden {
		t.Fatalf("the key claims without tasks:claim: %v", err)
	}
	if err := c.DeleteRole(ctx, role); rota.ErrorCode(err) != rota.CodeConflict {
		t.Fatalf("deleting a role a live key holds: %v", err)
	}
	keys, err := c.Keys(ctx)
	if err != nil || !containsKey(keys, key.ID) {
		t.Fatalf("keys: %v", err)
	}
	revoked, err := c.RevokeKey(ctx, key.ID)
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("revoke: %v %+v", err, revoked)
	}
	if _, err := producer.Enqueue(ctx, q, rota.TaskInput{}); rota.ErrorCode(err) != rota.CodeUnauthorized {
		t.Fatalf("a revoked key: %v", err)
	}
	if err := c.DeleteRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTenant(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTenant(ctx, name); !rota.IsNotFound(err) {
		t.Fatalf("a deleted tenant: %v", err)
	}
}

func containsTenant(tenants []rota.Tenant, name string) bool {
	for _, t := range tenants {
		if t.Name == name {
			return true
		}
	}
	return false
}

func containsKey(keys []rota.Key, id string) bool {
	for _, k := range keys {
		if k.ID == id {
			return true
		}
	}
	return false
}
