package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

const gitlabSecret = "s20-gitlab-secret-token-1"

// docs.github.com, "Validating webhook deliveries": this secret and body give this signature.
const (
	githubSecret    = "It's a Secret to Everybody"
	githubBody      = "Hello, World!"
	githubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

// providerAnswer is what a hook answered a provider: the task (duplicate: a redelivery's), or
// an error.
type providerAnswer struct {
	status int
	TaskID string `json:"task_id"`
	Dup    bool   `json:"duplicate"`
	Err    struct {
		Code string `json:"code"`
	} `json:"error"`
}

// sendToHook is a provider's POST to a hook, with plain net/http: its own headers, no Authorization.
func sendToHook(ctx context.Context, t *testing.T, url, body string, header map[string]string) providerAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a providerAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s answered %d, not JSON: %v", url, resp.StatusCode, err)
	}
	a.status = resp.StatusCode
	return a
}

// gitlabPush is a GitLab push event, its secret token sent as it is.
func gitlabPush(ctx context.Context, t *testing.T, url, token, key string) providerAnswer {
	t.Helper()
	header := map[string]string{"Content-Type": "application/json", "X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook"}
	if key != "" {
		header["Idempotency-Key"] = key
	}
	return sendToHook(ctx, t, url, `{"ref":"refs/heads/main"}`, header)
}

func taskIDs(ctx context.Context, t *testing.T, c *rota.Client, q string) []string {
	t.Helper()
	page, err := c.ListTasks(ctx, q, rota.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range page.Tasks {
		ids = append(ids, task.ID)
	}
	return ids
}

func payloadOf(ctx context.Context, t *testing.T, c *rota.Client, id string) map[string]any {
	t.Helper()
	task, err := c.GetTask(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func text(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// S20: inbound webhooks: a gitlab hook's request becomes a task of its queue with the payload
// {body, headers}; a wrong or missing token is a 401 and no task; the hook is read, listed,
// disabled (403 hook_disabled), rotated and deleted through the client, and its requests and
// events say what happened.
func TestS20GitLabHookTurnsARequestIntoATask(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	name := "s20-gitlab-" + q[len(q)-8:]
	made, err := c.CreateHook(ctx, rota.NewHook{Name: name, Queue: q, Kind: "gitlab.push", Verify: rota.HookVerifyGitLab, Secret: gitlabSecret, Description: "s20"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(made.ID, "hk_") || made.Name != name || made.Queue != q || made.Kind != "gitlab.push" ||
		made.Verify != rota.HookVerifyGitLab || !made.Enabled || text(made.Description) != "s20" || made.Owner == nil {
		t.Fatalf("created %+v", made)
	}
	if text(made.Secret) != gitlabSecret || made.PreviousSecretUntil != nil || !strings.HasSuffix(made.URL, "/hooks/"+made.ID) {
		t.Fatalf("created %+v", made)
	}

	// GitLab sends its secret token as it is; the request becomes a task of the hook's queue.
	key := "s20-gitlab-delivery-" + q[len(q)-8:]
	sent := gitlabPush(ctx, t, made.URL, gitlabSecret, key)
	if sent.status != 202 || sent.Dup || sent.TaskID == "" {
		t.Fatalf("a good token: %+v", sent)
	}
	task, err := c.GetTask(ctx, sent.TaskID)
	if err != nil || task.Queue != q || task.Kind != "gitlab.push" {
		t.Fatalf("its task %+v, %v", task, err)
	}
	want := map[string]any{
		"body":    map[string]any{"ref": "refs/heads/main"},
		"headers": map[string]any{"x-gitlab-event": "Push Hook", "idempotency-key": key},
	}
	if got := payloadOf(ctx, t, c, sent.TaskID); !reflect.DeepEqual(got, want) {
		t.Fatalf("payload %v, want %v", got, want)
	}

	// A wrong token and no token: 401, and no task.
	if wrong := gitlabPush(ctx, t, made.URL, "not-the-secret-token", ""); wrong.status != 401 || wrong.Err.Code != "bad_signature" {
		t.Fatalf("a wrong token: %+v", wrong)
	}
	if none := sendToHook(ctx, t, made.URL, "{}", map[string]string{"Content-Type": "application/json"}); none.status != 401 || none.Err.Code != "missing_signature" {
		t.Fatalf("no token: %+v", none)
	}
	if ids := taskIDs(ctx, t, c, q); !reflect.DeepEqual(ids, []string{sent.TaskID}) {
		t.Fatalf("tasks %v", ids)
	}

	// Read back through the client: the secret is not shown again.
	hooks, err := c.Hooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, h := range hooks {
		listed = listed || (h.ID == made.ID && h.Secret == nil)
	}
	if !listed {
		t.Fatalf("%s not listed, or listed with its secret: %+v", made.ID, hooks)
	}
	shown, err := c.GetHook(ctx, made.ID)
	if err != nil || shown.Secret != nil || shown.URL != made.URL {
		t.Fatalf("read back %+v, %v", shown, err)
	}
	requests, err := c.HookRequests(ctx, made.ID)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range requests {
		seen = append(seen, string(r.Outcome)+" "+http.StatusText(r.Status))
	}
	if strings.Join(seen, ", ") != "rejected Unauthorized, rejected Unauthorized, received Accepted" {
		t.Fatalf("requests %v", seen)
	}
	if !strings.HasPrefix(text(requests[0].Reason), "missing_signature") || !strings.HasPrefix(text(requests[1].Reason), "bad_signature") {
		t.Fatalf("reasons %q, %q", text(requests[0].Reason), text(requests[1].Reason))
	}
	if r := requests[2]; text(r.TaskID) != sent.TaskID || text(r.Delivery) != key || r.Reason != nil || r.Address == "" {
		t.Fatalf("the received request %+v", r)
	}

	// The event log has both outcomes.
	events, err := c.Events(ctx, rota.EventOptions{Types: []string{"hook.*"}, Queues: []string{q}})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events.Events {
		var data struct {
			HookID string `json:"hook_id"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(e.Data, &data); err != nil || data.HookID != made.ID {
			t.Fatalf("event %s data %s", e.Type, e.Data)
		}
		if e.Type == "hook.received" && text(e.TaskID) != sent.TaskID || e.Type == "hook.rejected" && data.Reason == "" {
			t.Fatalf("event %+v data %s", e, e.Data)
		}
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "hook.received,hook.rejected,hook.rejected" {
		t.Fatalf("events %v", types)
	}

	// Disabled, it refuses even a good token (403 hook_disabled) and enqueues nothing.
	off, err := c.UpdateHook(ctx, made.ID, rota.HookPatch{Enabled: rota.Ptr(false), Description: rota.Ptr("off")})
	if err != nil || off.Enabled || text(off.Description) != "off" || off.Secret != nil {
		t.Fatalf("disabled %+v, %v", off, err)
	}
	if refused := gitlabPush(ctx, t, made.URL, gitlabSecret, ""); refused.status != 403 || refused.Err.Code != "hook_disabled" {
		t.Fatalf("a disabled hook: %+v", refused)
	}
	if ids := taskIDs(ctx, t, c, q); len(ids) != 1 {
		t.Fatalf("tasks %v", ids)
	}
	if on, err := c.UpdateHook(ctx, made.ID, rota.HookPatch{Enabled: rota.Ptr(true)}); err != nil || !on.Enabled {
		t.Fatalf("enabled %+v, %v", on, err)
	}

	// A rotation with no grace: the new secret works at once and the old one no longer does.
	first, err := c.RotateHookSecret(ctx, made.ID, rota.HookRotation{GraceMs: rota.Ptr(int64(0)), Secret: "s20-gitlab-secret-token-2"})
	if err != nil || text(first.Secret) != "s20-gitlab-secret-token-2" || first.PreviousSecretUntil != nil {
		t.Fatalf("rotated with no grace %+v, %v", first, err)
	}
	if a := gitlabPush(ctx, t, made.URL, gitlabSecret, ""); a.status != 401 {
		t.Fatalf("the old secret after a rotation with no grace: %+v", a)
	}
	if a := gitlabPush(ctx, t, made.URL, *first.Secret, ""); a.status != 202 {
		t.Fatalf("the new secret: %+v", a)
	}
	// With an hour's grace and a secret made by the server: both work until then.
	second, err := c.RotateHookSecret(ctx, made.ID, rota.HookRotation{GraceMs: rota.Ptr(int64(3_600_000))})
	if err != nil || second.Secret == nil || *second.Secret == *first.Secret || second.PreviousSecretUntil == nil {
		t.Fatalf("rotated with an hour's grace %+v, %v", second, err)
	}
	for _, secret := range []string{*second.Secret, *first.Secret} {
		if a := gitlabPush(ctx, t, made.URL, secret, ""); a.status != 202 {
			t.Fatalf("within the grace, %q: %+v", secret, a)
		}
	}
	if again, err := c.GetHook(ctx, made.ID); err != nil || again.PreviousSecretUntil == nil || !again.PreviousSecretUntil.Equal(*second.PreviousSecretUntil) {
		t.Fatalf("read back after the rotation %+v, %v", again, err)
	}
	if ids := taskIDs(ctx, t, c, q); len(ids) != 4 {
		t.Fatalf("tasks %v", ids)
	}

	if err := c.DeleteHook(ctx, made.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetHook(ctx, made.ID); !rota.IsNotFound(err) {
		t.Fatalf("a deleted hook: %v", err)
	}
	var apiErr *rota.Error
	if _, err := c.HookRequests(ctx, made.ID); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("a deleted hook's requests: %v", err)
	}
	if gone := gitlabPush(ctx, t, made.URL, *second.Secret, ""); gone.status != 404 || gone.Err.Code != "not_found" {
		t.Fatalf("sent to a deleted hook: %+v", gone)
	}
}

// S20: a github hook accepts GitHub's documented signature; the same delivery again finds the
// task the first made (200, duplicate); a body changed after signing is a 401.
func TestS20GitHubHookVerifiesItsSignatureAndFindsARedelivery(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	made, err := c.CreateHook(ctx, rota.NewHook{Name: "s20-github-" + q[len(q)-8:], Queue: q, Kind: "github.push", Verify: rota.HookVerifyGitHub, Secret: githubSecret})
	if err != nil {
		t.Fatal(err)
	}
	delivery := "s20-github-delivery-" + q[len(q)-8:]
	header := map[string]string{
		"Content-Type":        "text/plain",
		"X-Hub-Signature-256": githubSignature,
		"X-GitHub-Delivery":   delivery,
		"X-GitHub-Event":      "push",
	}

	first := sendToHook(ctx, t, made.URL, githubBody, header)
	if first.status != 202 || first.Dup || first.TaskID == "" {
		t.Fatalf("GitHub's vector: %+v", first)
	}
	// Not JSON: the body is kept as text.
	want := map[string]any{"body": "Hello, World!", "headers": map[string]any{"x-github-delivery": delivery, "x-github-event": "push"}}
	if got := payloadOf(ctx, t, c, first.TaskID); !reflect.DeepEqual(got, want) {
		t.Fatalf("payload %v, want %v", got, want)
	}

	// GitHub redelivers with the same delivery id: the task it made is found, no new one.
	again := sendToHook(ctx, t, made.URL, githubBody, header)
	if again.status != 200 || !again.Dup || again.TaskID != first.TaskID {
		t.Fatalf("the redelivery: %+v", again)
	}
	if ids := taskIDs(ctx, t, c, q); !reflect.DeepEqual(ids, []string{first.TaskID}) {
		t.Fatalf("tasks %v", ids)
	}

	// The body changed after signing: refused.
	if forged := sendToHook(ctx, t, made.URL, "Hello, World?", header); forged.status != 401 || forged.Err.Code != "bad_signature" {
		t.Fatalf("a changed body: %+v", forged)
	}

	requests, err := c.HookRequests(ctx, made.ID)
	if err != nil || len(requests) != 3 {
		t.Fatalf("requests %+v, %v", requests, err)
	}
	outcomes := []rota.HookOutcome{requests[0].Outcome, requests[1].Outcome, requests[2].Outcome}
	wantOutcomes := []rota.HookOutcome{rota.HookRejected, rota.HookDuplicate, rota.HookReceived}
	if !reflect.DeepEqual(outcomes, wantOutcomes) || requests[1].Status != 200 || requests[2].Status != 202 {
		t.Fatalf("requests %+v", requests)
	}
	for _, r := range requests[1:] {
		if text(r.Delivery) != delivery || text(r.TaskID) != first.TaskID {
			t.Fatalf("request %+v", r)
		}
	}
	if err := c.DeleteHook(ctx, made.ID); err != nil {
		t.Fatal(err)
	}
}
