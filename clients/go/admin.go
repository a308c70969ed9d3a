package rota

import (
	"context"
	"net/http"
)

// CreateTenant creates a tenant (admin only).
func (c *Client) CreateTenant(ctx context.Context, t NewTenant) (*Tenant, error) {
	return c.tenantCall(ctx, http.MethodPost, "/v1/admin/tenants", t)
}

// Tenants lists the tenants (admin only).
func (c *Client) Tenants(ctx context.Context) ([]Tenant, error) {
	var out struct {
		Tenants []Tenant `json:"tenants"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/admin/tenants", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Tenants, nil
}

// GetTenant reads a tenant (admin only).
func (c *Client) GetTenant(ctx context.Context, name string) (*Tenant, error) {
	return c.tenantCall(ctx, http.MethodGet, "/v1/admin/tenants/"+esc(name), nil)
}

// UpdateTenant changes a tenant's limits or event retention (admin only).
func (c *Client) UpdateTenant(ctx context.Context, name string, patch TenantPatch) (*Tenant, error) {
	return c.tenantCall(ctx, http.MethodPatch, "/v1/admin/tenants/"+esc(name), patch)
}

// DeleteTenant removes a tenant with its queues, tasks, keys and roles (admin only).
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/admin/tenants/"+esc(name), nil, nil, nil, 0)
}

func (c *Client) tenantCall(ctx context.Context, method, path string, body any) (*Tenant, error) {
	var out Tenant
	if err := c.call(ctx, method, path, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateKey creates an API key; the answer's Token is shown this once.
func (c *Client) CreateKey(ctx context.Context, k NewKey) (*CreatedKey, error) {
	var out CreatedKey
	if err := c.call(ctx, http.MethodPost, "/v1/keys", nil, k, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Keys lists the tenant's keys, revoked ones included.
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var out struct {
		Keys []Key `json:"keys"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/keys", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// GetKey reads a key.
func (c *Client) GetKey(ctx context.Context, id string) (*Key, error) {
	return c.keyCall(ctx, http.MethodGet, id, "")
}

// RotateKey gives a key a new secret; the key keeps its id, roles and limits, and the answer's
// Token is shown this once. The old secret is still accepted for graceMs milliseconds (0 to
// 259,200,000; 0 refuses it at once), until PreviousSecretUntil; nil is the server's default, a
// day. A revoked or expired key is a 409 conflict.
func (c *Client) RotateKey(ctx context.Context, id string, graceMs *int64) (*CreatedKey, error) {
	var out CreatedKey
	if err := c.call(ctx, http.MethodPost, "/v1/keys/"+esc(id)+"/rotate", nil, rotateBody{GraceMs: graceMs}, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeKey revokes a key; it stays listed with RevokedAt.
func (c *Client) RevokeKey(ctx context.Context, id string) (*Key, error) {
	return c.keyCall(ctx, http.MethodDelete, id, "")
}

// RevokeKeySessions ends every dashboard session of the key; the key keeps working.
func (c *Client) RevokeKeySessions(ctx context.Context, id string) (*Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "/sessions/revoke")
}

func (c *Client) keyCall(ctx context.Context, method, id, action string) (*Key, error) {
	var out Key
	if err := c.call(ctx, method, "/v1/keys/"+esc(id)+action, nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Roles lists the roles, built-in ones first.
func (c *Client) Roles(ctx context.Context) ([]Role, error) {
	var out struct {
		Roles []Role `json:"roles"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/roles", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Roles, nil
}

// GetRole reads a role.
func (c *Client) GetRole(ctx context.Context, name string) (*Role, error) {
	var out Role
	if err := c.call(ctx, http.MethodGet, "/v1/roles/"+esc(name), nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutRole creates or replaces a custom role.
func (c *Client) PutRole(ctx context.Context, name string, rules []Rule) (*Role, error) {
	var out Role
	if err := c.call(ctx, http.MethodPut, "/v1/roles/"+esc(name), nil, roleBody{rules}, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteRole deletes a custom role no live key holds.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/roles/"+esc(name), nil, nil, nil, 0)
}

// WhoAmI describes the caller's credential.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var out WhoAmI
	if err := c.call(ctx, http.MethodGet, "/v1/whoami", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Maintenance reads the maintenance state; nil when off.
func (c *Client) Maintenance(ctx context.Context) (*Maintenance, error) {
	return c.maintenanceCall(ctx, http.MethodGet, nil)
}

// SetMaintenance turns maintenance on or announces it (admin only).
func (c *Client) SetMaintenance(ctx context.Context, m MaintenanceRequest) (*Maintenance, error) {
	return c.maintenanceCall(ctx, http.MethodPut, m)
}

// EndMaintenance turns maintenance off (admin only).
func (c *Client) EndMaintenance(ctx context.Context) error {
	_, err := c.maintenanceCall(ctx, http.MethodDelete, nil)
	return err
}

func (c *Client) maintenanceCall(ctx context.Context, method string, body any) (*Maintenance, error) {
	var out maintenanceState
	if err := c.call(ctx, method, "/v1/admin/maintenance", nil, body, &out, 0); err != nil {
		return nil, err
	}
	return out.Maintenance, nil
}
