package rota

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// NewWebhook is a webhook to create.
type NewWebhook struct {
	URL string `json:"url"`
	// Events are the types or patterns it receives (task.dead, task.*).
	Events []string `json:"events"`
	// Queues are the queue names or patterns it covers; empty is all.
	Queues      []string `json:"queues,omitempty"`
	Description string   `json:"description,omitempty"`
}

// WebhookPatch changes the fields it names.
type WebhookPatch struct {
	URL    *string   `json:"url,omitempty"`
	Events *[]string `json:"events,omitempty"`
	// Queues set to an empty list covers all queues.
	Queues      *[]string `json:"queues,omitempty"`
	Description *string   `json:"description,omitempty"`
	Enabled     *bool     `json:"enabled,omitempty"`
}

// Webhook is a webhook as the server shows it. Secret is set only when created or rotated.
type Webhook struct {
	ID                  string     `json:"id"`
	URL                 string     `json:"url"`
	Events              []string   `json:"events"`
	Queues              []string   `json:"queues"`
	Description         *string    `json:"description"`
	Enabled             bool       `json:"enabled"`
	DisabledReason      *string    `json:"disabled_reason"`
	FailingSince        *time.Time `json:"failing_since"`
	PreviousSecretUntil *time.Time `json:"previous_secret_until"`
	Secret              *string    `json:"secret"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

// Delivery is one event sent (or to be sent) to a webhook.
type Delivery struct {
	ID            int64      `json:"id"`
	WebhookID     string     `json:"webhook_id"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     *string    `json:"last_error"`
	LatencyMs     *int64     `json:"latency_ms"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	Event         Event      `json:"event"`
}

// DeliveryList is one page of a webhook's deliveries, newest first.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
	// NextCursor is the before of the next page; nil on the last.
	NextCursor *int64 `json:"next_cursor"`
}

// DeliveryOptions filters and pages deliveries.
type DeliveryOptions struct {
	// State is pending, failed, dead or delivered; "" is any.
	State  string
	Limit  int
	Before int64
}

// CallbacksSecret says whether the tenant has a callback secret (Secret is set only when
// rotated).
type CallbacksSecret struct {
	Configured          bool       `json:"configured"`
	Secret              *string    `json:"secret"`
	PreviousSecretUntil *time.Time `json:"previous_secret_until"`
}

type rotateBody struct {
	GraceMs *int64 `json:"grace_ms,omitempty"`
}

// CreateWebhook creates a webhook; the answer's Secret is shown this once.
func (c *Client) CreateWebhook(ctx context.Context, w NewWebhook) (*Webhook, error) {
	return c.webhookCall(ctx, http.MethodPost, "/v1/webhooks", w)
}

// Webhooks lists the tenant's webhooks.
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/webhooks", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// GetWebhook reads a webhook.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	return c.webhookCall(ctx, http.MethodGet, "/v1/webhooks/"+esc(id), nil)
}

// UpdateWebhook changes a webhook; Enabled true also clears an automatic disabling.
func (c *Client) UpdateWebhook(ctx context.Context, id string, patch WebhookPatch) (*Webhook, error) {
	return c.webhookCall(ctx, http.MethodPatch, "/v1/webhooks/"+esc(id), patch)
}

// DeleteWebhook deletes a webhook and its deliveries.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/webhooks/"+esc(id), nil, nil, nil, 0)
}

// RotateWebhookSecret makes a new secret (in the answer's Secret); the old one keeps signing
// for grace (0: the server's default, a day).
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, grace time.Duration) (*Webhook, error) {
	return c.webhookCall(ctx, http.MethodPost, "/v1/webhooks/"+esc(id)+"/rotate-secret", graceBody(grace))
}

// Deliveries reads one page of a webhook's deliveries (id "callbacks" for task results).
func (c *Client) Deliveries(ctx context.Context, id string, opts DeliveryOptions) (*DeliveryList, error) {
	q := url.Values{}
	set(q, "state", opts.State)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Before > 0 {
		q.Set("before", strconv.FormatInt(opts.Before, 10))
	}
	var out DeliveryList
	if err := c.call(ctx, http.MethodGet, "/v1/webhooks/"+esc(id)+"/deliveries", q, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetryDelivery sends a delivery again now, whatever its state.
func (c *Client) RetryDelivery(ctx context.Context, webhookID string, delivery int64) (*Delivery, error) {
	var out Delivery
	path := "/v1/webhooks/" + esc(webhookID) + "/deliveries/" + strconv.FormatInt(delivery, 10) + "/retry"
	if err := c.call(ctx, http.MethodPost, path, nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Callbacks says whether the tenant has a secret for task-result callbacks.
func (c *Client) Callbacks(ctx context.Context) (*CallbacksSecret, error) {
	var out CallbacksSecret
	if err := c.call(ctx, http.MethodGet, "/v1/callbacks", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateCallbackSecret makes (or rotates) the tenant's callback secret.
func (c *Client) RotateCallbackSecret(ctx context.Context, grace time.Duration) (*CallbacksSecret, error) {
	var out CallbacksSecret
	if err := c.call(ctx, http.MethodPost, "/v1/callbacks/rotate-secret", nil, graceBody(grace), &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) webhookCall(ctx context.Context, method, path string, body any) (*Webhook, error) {
	var out Webhook
	if err := c.call(ctx, method, path, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

func graceBody(grace time.Duration) rotateBody {
	if grace <= 0 {
		return rotateBody{}
	}
	ms := grace.Milliseconds()
	return rotateBody{GraceMs: &ms}
}
