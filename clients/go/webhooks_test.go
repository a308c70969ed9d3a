package rota_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

type delivery struct {
	header http.Header
	body   []byte
}

func TestS10WebhooksAndSignatures(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	received := make(chan delivery, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received <- delivery{r.Header.Clone(), body}
	}))
	defer receiver.Close()

	hook, err := c.CreateWebhook(ctx, rota.NewWebhook{URL: receiver.URL + "/hook", Events: []string{"task.enqueued"}, Queues: []string{q}, Description: "s10"})
	if err != nil {
		t.Fatal(err)
	}
	if hook.Secret == nil || *hook.Secret == "" || !hook.Enabled {
		t.Fatalf("created %+v", hook)
	}
	list, err := c.Webhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range list {
		if w.ID == hook.ID {
			found = w.Secret == nil
		}
	}
	if !found {
		t.Fatalf("%s not listed, or listed with its secret", hook.ID)
	}

	task, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "hooked"})
	if err != nil {
		t.Fatal(err)
	}
	var d delivery
	select {
	case d = <-received:
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery within 15 s")
	}
	if d.header.Get("Rota-Webhook-Id") != hook.ID {
		t.Fatalf("delivery headers %v", d.header)
	}
	if err := rota.VerifyDelivery(*hook.Secret, hook.URL, d.header, d.body); err != nil {
		t.Fatalf("a real delivery does not verify: %v", err)
	}
	tampered := append([]byte(nil), d.body...)
	tampered[len(tampered)-2] ^= 1
	if err := rota.VerifyDelivery(*hook.Secret, hook.URL, d.header, tampered); !errors.Is(err, rota.ErrBadSignature) {
		t.Fatalf("a tampered body: %v", err)
	}
	if err := rota.VerifyDelivery("whsec_wrong", hook.URL, d.header, d.body); !errors.Is(err, rota.ErrBadSignature) {
		t.Fatalf("another secret: %v", err)
	}
	if err := rota.VerifyDelivery(*hook.Secret, receiver.URL+"/other", d.header, d.body); !errors.Is(err, rota.ErrBadSignature) {
		t.Fatalf("another endpoint: %v", err)
	}
	late := rota.DeliveryVerifier{Secrets: []string{*hook.Secret}, URL: hook.URL, Now: func() time.Time { return time.Now().Add(10 * time.Minute) }}
	if err := late.Verify(d.header, d.body); err == nil {
		t.Fatal("a delivery ten minutes old verified")
	}

	var deliveries *rota.DeliveryList
	eventually(t, 10*time.Second, "the delivery is listed as delivered", func() bool {
		deliveries, err = c.Deliveries(ctx, hook.ID, rota.DeliveryOptions{State: "delivered"})
		return err == nil && len(deliveries.Deliveries) == 1
	})
	if got := deliveries.Deliveries[0].Event; got.TaskID == nil || *got.TaskID != task.ID || got.Type != "task.enqueued" {
		t.Fatalf("delivered event %+v", got)
	}

	if err := c.DeleteWebhook(ctx, hook.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhook(ctx, hook.ID); !rota.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

// During a rotation both secrets sign each delivery, and a receiver holding either accepts it.
func TestVerifyDuringRotation(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	received := make(chan delivery, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received <- delivery{r.Header.Clone(), body}
	}))
	defer receiver.Close()
	hook, err := c.CreateWebhook(ctx, rota.NewWebhook{URL: receiver.URL, Events: []string{"task.enqueued"}, Queues: []string{q}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.DeleteWebhook(ctx, hook.ID) }()
	rotated, err := c.RotateWebhookSecret(ctx, hook.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == nil || *rotated.Secret == *hook.Secret || rotated.PreviousSecretUntil == nil {
		t.Fatalf("rotated %+v", rotated)
	}
	if _, err := c.Enqueue(ctx, q, rota.TaskInput{}); err != nil {
		t.Fatal(err)
	}
	var d delivery
	select {
	case d = <-received:
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery within 15 s")
	}
	for _, secret := range []string{*hook.Secret, *rotated.Secret} {
		if err := rota.VerifyDelivery(secret, rotated.URL, d.header, d.body); err != nil {
			t.Fatalf("secret %s…: %v (signature %s)", secret[:10], err, d.header.Get("Rota-Signature"))
		}
	}
}

// A task's outcome goes to its callback_url, signed with the tenant's callback secret.
func TestS10TaskResultCallbackIsSigned(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	received := make(chan delivery, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received <- delivery{r.Header.Clone(), body}
	}))
	defer receiver.Close()
	secret, err := c.RotateCallbackSecret(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !secret.Configured || secret.Secret == nil {
		t.Fatalf("rotated %+v", secret)
	}
	if state, err := c.Callbacks(ctx); err != nil || !state.Configured || state.Secret != nil {
		t.Fatalf("callbacks: %v %+v", err, state)
	}
	task, err := c.Enqueue(ctx, q, rota.TaskInput{CallbackURL: receiver.URL + "/done"})
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s10"})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v", err)
	}
	if _, err := c.Complete(ctx, task.ID, claimed[0].Lease.Token, rawJSON(t, map[string]int{"rows": 12})); err != nil {
		t.Fatal(err)
	}
	var d delivery
	select {
	case d = <-received:
	case <-time.After(15 * time.Second):
		t.Fatal("no callback within 15 s")
	}
	if d.header.Get("Rota-Webhook-Id") != "callbacks" {
		t.Fatalf("callback headers %v", d.header)
	}
	if err := rota.VerifyDelivery(*secret.Secret, *task.CallbackURL, d.header, d.body); err != nil {
		t.Fatalf("the callback does not verify: %v", err)
	}
	var outcome rota.Task
	if err := json.Unmarshal(d.body, &outcome); err != nil || outcome.ID != task.ID || outcome.State != rota.StateSucceeded || !jsonEqual(t, outcome.Result, rawJSON(t, map[string]int{"rows": 12})) {
		t.Fatalf("callback body %s: %v", d.body, err)
	}
}
