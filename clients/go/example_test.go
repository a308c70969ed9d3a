package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"

	rota "github.com/rota-dev/rota/clients/go"
)

// The README's quick start.
func Example() {
	ctx := context.Background()
	client, _ := rota.New() // ROTA_URL (default http://127.0.0.1:7070) and ROTA_TOKEN
	task, _ := client.Enqueue(ctx, "emails", rota.TaskInput{Kind: "email.send", Payload: map[string]string{"to": "ada@example.com"}})
	w := &rota.Worker{Client: client, Queue: "emails", Concurrency: 8,
		Handler: func(ctx context.Context, t *rota.Task) (any, error) { return map[string]bool{"sent": true}, nil }}
	stats, err := w.Run(ctx) // until ctx is cancelled; running handlers finish first
	fmt.Println(task.ID, stats, err)
}

func ExampleWorker() {
	client, err := rota.New()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	w := &rota.Worker{
		Client:      client,
		Queue:       "emails",
		Kinds:       []string{"email.send"},
		Concurrency: 16,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			var msg struct{ To string }
			if err := json.Unmarshal(task.Payload, &msg); err != nil {
				return nil, rota.Dead(err) // a payload that will never work: no retries
			}
			return nil, send(ctx, msg.To) // an error fails the attempt; it runs again later
		},
	}
	stats, err := w.Run(ctx) // Ctrl-C: claims stop, running handlers finish
	log.Printf("%d sent, %d failed: %v", stats.Succeeded, stats.Failed, err)
}

func send(ctx context.Context, to string) error { return nil }

func ExampleVerifyDelivery() {
	secret := os.Getenv("ROTA_WEBHOOK_SECRET")
	const endpoint = "https://ops.example.com/rota" // as registered
	http.HandleFunc("/rota", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := rota.VerifyDelivery(secret, endpoint, r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var event rota.Event
		_ = json.Unmarshal(body, &event)
		log.Printf("delivery %s: %s of %s", r.Header.Get("Rota-Delivery-Id"), event.Type, event.Queue)
	})
}

func ExampleClient_Follow() {
	client, _ := rota.New()
	err := client.Follow(context.Background(), rota.EventOptions{Types: []string{"task.dead"}}, func(e rota.Event) error {
		fmt.Println(e.Cursor, e.Type, e.Queue, *e.TaskID)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}
