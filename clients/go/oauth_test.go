package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// credentialsClient is a client of url that authenticates with the key's client credentials.
func credentialsClient(t *testing.T, url, id, secret string, scope ...string) *rota.Client {
	t.Helper()
	c, err := rota.New(rota.WithURL(url), rota.WithClientCredentials(id, secret, scope...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// isError reports whether err is the server's answer with this status and code.
func isError(err error, status int, code string) bool {
	var e *rota.Error
	return errors.As(err, &e) && e.Status == status && e.Code == code
}

func taskKinds(ctx context.Context, t *testing.T, c *rota.Client, queue string) ([]string, error) {
	t.Helper()
	list, err := c.ListTasks(ctx, queue, rota.ListOptions{})
	if err != nil {
		return nil, err
	}
	var kinds []string
	for _, task := range list.Tasks {
		kinds = append(kinds, task.Kind)
	}
	return kinds, nil
}

// S21: OAuth 2.0 client credentials: a key's id and token become an access token (Bearer, an
// hour) that acts as the key, narrowed by its scope; a client built with client credentials
// fetches and renews its own; a wrong secret is invalid_client, an unknown scope item
// invalid_scope; a revoked key ends its tokens (401 after the client's one retry).
func TestS21OAuthClientCredentials(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	key, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{"producer"}, Name: "s21-oauth"})
	if err != nil {
		t.Fatal(err)
	}
	token, err := c.FetchToken(ctx, key.ID, key.Token)
	if err != nil {
		t.Fatal(err)
	}
	if token.TokenType != "Bearer" || token.ExpiresIn != 3600 || !strings.Contains(" "+token.Scope+" ", " tasks:enqueue ") {
		t.Fatalf("the token %+v", token)
	}
	// The access token is a bearer token like any other, acting as its key.
	who, err := newClient(t, rota.WithToken(token.AccessToken)).WhoAmI(ctx)
	if err != nil || !strings.Contains(who.Principal, key.ID) {
		t.Fatalf("whoami with the access token: %+v, %v", who, err)
	}

	// A client built with client credentials fetches its token itself.
	q := queueName(t)
	byCredentials := credentialsClient(t, server.URL, key.ID, key.Token)
	task, err := byCredentials.Enqueue(ctx, q, rota.TaskInput{Kind: "s21.k", Payload: map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetTask(ctx, task.ID); err != nil || string(got.Payload) != `{"n":1}` {
		t.Fatalf("the task enqueued with an access token: %+v, %v", got, err)
	}
	// The event stream is opened with the access token too.
	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	var first rota.Event
	err = byCredentials.Follow(followCtx, rota.EventOptions{Queues: []string{q}}, func(e rota.Event) error {
		first = e
		stopFollowing()
		return nil
	})
	if !errors.Is(err, context.Canceled) || first.Type != "task.enqueued" || first.TaskID == nil || *first.TaskID != task.ID {
		t.Fatalf("following events: %+v, %v", first, err)
	}

	// Narrowed to reading the reports-* queues' tasks.
	for queue, kind := range map[string]string{"reports-eu": "s21.report", "emails": "s21.email"} {
		if _, err := c.Enqueue(ctx, queue, rota.TaskInput{Kind: kind}); err != nil {
			t.Fatal(err)
		}
	}
	narrowed, err := c.FetchToken(ctx, key.ID, key.Token, "tasks:read", "queues/reports-*")
	if err != nil || narrowed.Scope != "tasks:read queues/reports-*" {
		t.Fatalf("a narrowed token: %+v, %v", narrowed, err)
	}
	reader := newClient(t, rota.WithToken(narrowed.AccessToken))
	if kinds, err := taskKinds(ctx, t, reader, "reports-eu"); err != nil || !reflect.DeepEqual(kinds, []string{"s21.report"}) {
		t.Fatalf("reports-eu's tasks: %v, %v", kinds, err)
	}
	_, err = reader.Enqueue(ctx, "reports-eu", rota.TaskInput{Kind: "s21.report"})
	if !isError(err, 403, rota.CodeForbidden) || !strings.Contains(err.Error(), "scope") {
		t.Fatalf("enqueueing with a read scope: %v", err)
	}
	if _, err := taskKinds(ctx, t, reader, "emails"); !isError(err, 403, rota.CodeForbidden) {
		t.Fatalf("reading emails with a reports-* scope: %v", err)
	}
	// The same scope given to a client built with client credentials.
	scoped := credentialsClient(t, server.URL, key.ID, key.Token, "tasks:read", "queues/reports-*")
	if kinds, err := taskKinds(ctx, t, scoped, "reports-eu"); err != nil || len(kinds) != 1 {
		t.Fatalf("reports-eu's tasks with a scoped client: %v, %v", kinds, err)
	}
	if _, err := taskKinds(ctx, t, scoped, "emails"); !isError(err, 403, rota.CodeForbidden) {
		t.Fatalf("reading emails with a scoped client: %v", err)
	}

	// OAuth's errors become *rota.Error, the OAuth error as the code.
	_, err = c.FetchToken(ctx, key.ID, "rota_"+key.ID+"_"+strings.Repeat("0", 64))
	var wrong *rota.Error
	if !errors.As(err, &wrong) || wrong.Status != 401 || wrong.Code != rota.CodeInvalidClient || wrong.Message == "" {
		t.Fatalf("a wrong secret: %v", err)
	}
	_, err = c.FetchToken(ctx, key.ID, key.Token, "tasks:fly")
	if !isError(err, 400, rota.CodeInvalidScope) || !strings.Contains(err.Error(), "tasks:fly") {
		t.Fatalf("an unknown scope item: %v", err)
	}

	// Revoking the key ends its tokens: the client's next request is refused, it asks for a new
	// token once, and that is refused too.
	if _, err := taskKinds(ctx, t, byCredentials, q); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := taskKinds(ctx, t, byCredentials, q); !isError(err, 401, rota.CodeInvalidClient) {
		t.Fatalf("after the key was revoked: %v", err)
	}
}

func TestS21CredentialsAreATokenOrClientCredentials(t *testing.T) {
	if _, err := rota.New(rota.WithToken("a-token"), rota.WithClientCredentials("k", "rota_k_s")); err == nil {
		t.Fatal("a token and client credentials both given")
	}
}

// fakeTokenServer stands in for the token endpoint and GET /v1/queues: it issues t1, t2, ...
// lasting expiresIn seconds (after delay), and accepts the tokens in valid while accepting.
type fakeTokenServer struct {
	*httptest.Server
	mu        sync.Mutex
	forms     []map[string]string
	bearers   []string
	valid     map[string]bool
	accepting bool
}

func newFakeTokenServer(t *testing.T, expiresIn int64, delay time.Duration) *fakeTokenServer {
	f := &fakeTokenServer{valid: map[string]bool{}, accepting: true}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth/token" {
			if r.Header.Get("Authorization") != "" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				http.Error(w, `{"error":"invalid_request","error_description":"not a plain form"}`, 400)
				return
			}
			_ = r.ParseForm()
			time.Sleep(delay)
			f.mu.Lock()
			form := map[string]string{}
			for k := range r.PostForm {
				form[k] = r.PostForm.Get(k)
			}
			f.forms = append(f.forms, form)
			token := fmt.Sprintf("t%d", len(f.forms))
			f.valid[token] = true
			f.mu.Unlock()
			_ = json.NewEncoder(w).Encode(rota.AccessToken{AccessToken: token, TokenType: "Bearer", ExpiresIn: expiresIn})
			return
		}
		bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		f.bearers = append(f.bearers, bearer)
		ok := f.accepting && f.valid[bearer]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"not a valid token"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"queues":[]}`))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeTokenServer) seen() (forms []map[string]string, bearers []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]string(nil), f.forms...), append([]string(nil), f.bearers...)
}

func TestS21ATokenIsRenewedBeforeItEnds(t *testing.T) {
	f := newFakeTokenServer(t, 1, 0) // renewed after half its life
	c, ctx := credentialsClient(t, f.URL, "k", "rota_k_s", "tasks:read"), testContext(t)
	for i := 0; i < 2; i++ {
		if _, err := c.Queues(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(600 * time.Millisecond)
	if _, err := c.Queues(ctx); err != nil {
		t.Fatal(err)
	}
	forms, bearers := f.seen()
	if !reflect.DeepEqual(bearers, []string{"t1", "t1", "t2"}) {
		t.Fatalf("tokens sent %v", bearers)
	}
	want := map[string]string{"grant_type": "client_credentials", "client_id": "k", "client_secret": "rota_k_s", "scope": "tasks:read"}
	if !reflect.DeepEqual(forms[0], want) {
		t.Fatalf("the form %v", forms[0])
	}
}

func TestS21A401GetsOneNewTokenAndOneRetry(t *testing.T) {
	f := newFakeTokenServer(t, 3600, 0)
	c, ctx := credentialsClient(t, f.URL, "k", "rota_k_s"), testContext(t)
	if _, err := c.Queues(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	delete(f.valid, "t1") // the server no longer takes it: a new one is fetched
	f.mu.Unlock()
	if _, err := c.Queues(ctx); err != nil {
		t.Fatal(err)
	}
	if forms, bearers := f.seen(); len(forms) != 2 || !reflect.DeepEqual(bearers, []string{"t1", "t1", "t2"}) {
		t.Fatalf("%d tokens fetched, sent %v", len(forms), bearers)
	}
	f.mu.Lock()
	f.accepting = false // no token works: one retry, then the 401
	f.mu.Unlock()
	if _, err := c.Queues(ctx); !isError(err, 401, rota.CodeUnauthorized) {
		t.Fatalf("refused: %v", err)
	}
	if forms, bearers := f.seen(); len(forms) != 3 || !reflect.DeepEqual(bearers[3:], []string{"t2", "t3"}) {
		t.Fatalf("%d tokens fetched, sent %v", len(forms), bearers)
	}
}

func TestS21OneRefreshAtATime(t *testing.T) {
	f := newFakeTokenServer(t, 3600, 200*time.Millisecond)
	c, ctx := credentialsClient(t, f.URL, "k", "rota_k_s"), testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Queues(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	forms, bearers := f.seen()
	if len(forms) != 1 || len(bearers) != 8 {
		t.Fatalf("%d tokens fetched for %d requests", len(forms), len(bearers))
	}
	for _, b := range bearers {
		if b != "t1" {
			t.Fatalf("tokens sent %v", bearers)
		}
	}
}
