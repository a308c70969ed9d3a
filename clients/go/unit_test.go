package rota_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestQueuePatchSendsOnlyWhatItNames(t *testing.T) {
	patch := rota.QueuePatch{Concurrency: rota.Clear[int](), GroupRate: rota.Set(rota.Rate{Limit: 5, PeriodMs: 1000}), Paused: rota.Ptr(false)}
	got, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"paused":false,"concurrency":null,"group_rate":{"limit":5,"period_ms":1000}}`
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// signed is a delivery as the server signs it, per docs/webhooks.md, with extra entries.
func signed(secret, url string, body []byte, at time.Time, extra string) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "\n42\nwh_1\n" + url + "\n" + string(body)))
	h := http.Header{}
	h.Set("Rota-Timestamp", ts)
	h.Set("Rota-Delivery-Id", "42")
	h.Set("Rota-Webhook-Id", "wh_1")
	h.Set("Rota-Signature", extra+"v2="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

func TestDeliveryVerifierRules(t *testing.T) {
	body := []byte(`{"cursor":1}`)
	const url = "https://hooks.example.com/rota"
	h := signed("new", url, body, time.Now(), "v1=00ff,v3=abc,")
	if err := (rota.DeliveryVerifier{Secrets: []string{"old", "new"}, URL: url}).Verify(h, body); err != nil {
		t.Fatalf("the second secret, among entries of other schemes: %v", err)
	}
	h.Set("Rota-Delivery-Id", "43")
	if err := rota.VerifyDelivery("new", url, h, body); !errors.Is(err, rota.ErrBadSignature) {
		t.Fatalf("another delivery id: %v", err)
	}
	h = signed("new", url, body, time.Now(), "")
	h.Set("Rota-Timestamp", "soon")
	if err := rota.VerifyDelivery("new", url, h, body); err == nil {
		t.Fatal("a timestamp that is not a number verified")
	}
	old := signed("new", url, body, time.Now().Add(-6*time.Minute), "")
	if err := rota.VerifyDelivery("new", url, old, body); err == nil || errors.Is(err, rota.ErrBadSignature) {
		t.Fatalf("a stale delivery: %v", err)
	}
}

// A load balancer's 502 (servers restarting) or a 500 does not stop a worker: it claims again
// a second later, as after a 503.
func TestWorkerClaimsAgainAfterAServerFault(t *testing.T) {
	var claims int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/claim") {
			switch atomic.AddInt32(&claims, 1) {
			case 1:
				http.Error(w, "<html>502 Bad Gateway</html>", http.StatusBadGateway)
			case 2:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"boom"}}`))
			default:
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"tasks":[]}`))
			}
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	client, err := rota.New(rota.WithURL(srv.URL), rota.WithToken("t"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	w := &rota.Worker{Client: client, Queue: "q", PollWait: 50 * time.Millisecond,
		Handler: func(ctx context.Context, t *rota.Task) (any, error) { return nil, nil }}
	if _, err := w.Run(ctx); err != nil {
		t.Fatalf("the worker stopped on a server fault: %v", err)
	}
	if n := atomic.LoadInt32(&claims); n < 3 {
		t.Fatalf("claimed %d times; want the 502 and the 500 followed by more claims", n)
	}
}
