// Command bench measures how fast the Go worker runtime drains a queue: it enqueues -tasks
// no-op tasks, runs a Worker with -concurrency until every task has succeeded, and prints the
// tasks per second of each run and their median.
//
//	go run ./bench -serve ../../target/release/rota -tasks 100000 -runs 3
//
// With -serve it starts that server binary on a free port and a fresh data directory;
// without it, it uses ROTA_URL and ROTA_TOKEN.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/pprof"
	"sort"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
	"github.com/rota-dev/rota/clients/go/internal/rotaserver"
)

func main() {
	var (
		serve       = flag.String("serve", "", "start this rota binary for the benchmark (else use ROTA_URL/ROTA_TOKEN)")
		tasks       = flag.Int("tasks", 100_000, "tasks per run")
		runs        = flag.Int("runs", 3, "runs; the median is reported")
		concurrency = flag.Int("concurrency", 200, "the worker's concurrency")
		cpuProfile  = flag.String("cpuprofile", "", "write the client's CPU profile here")
	)
	flag.Parse()
	log.SetFlags(0)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var opts []rota.Option
	if *serve != "" {
		srv, err := rotaserver.Start(*serve)
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Stop()
		opts = append(opts, rota.WithURL(srv.URL), rota.WithToken(srv.Token))
	}
	client, err := rota.New(opts...)
	if err != nil {
		log.Fatal(err)
	}
	var rates []float64
	for i := 1; i <= *runs; i++ {
		rate, err := run(client, *tasks, *concurrency)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("run %d: %d tasks, %.0f tasks/s\n", i, *tasks, rate)
		rates = append(rates, rate)
	}
	sort.Float64s(rates)
	fmt.Printf("median: %.0f tasks/s (go worker, concurrency %d, %d tasks, %d runs)\n", rates[len(rates)/2], *concurrency, *tasks, *runs)
}

// run fills a fresh queue with n tasks, then times a worker draining it.
func run(client *rota.Client, n, concurrency int) (float64, error) {
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	queue := "bench-go-" + hex.EncodeToString(b[:])
	for left := n; left > 0; {
		size := left
		if size > 10_000 {
			size = 10_000
		}
		if _, err := client.EnqueueBatch(ctx, queue, make([]rota.TaskInput, size)); err != nil {
			return 0, fmt.Errorf("enqueueing: %w", err)
		}
		left -= size
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	worker := &rota.Worker{
		Client: client, Queue: queue, Concurrency: concurrency, PollWait: time.Second,
		Handler: func(context.Context, *rota.Task) (any, error) { return nil, nil },
		Logger:  log.New(io.Discard, "", 0),
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := worker.Run(runCtx)
		done <- err
	}()
	for {
		select {
		case err := <-done:
			return 0, fmt.Errorf("the worker stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		stats, err := client.GetQueue(ctx, queue)
		if err != nil {
			return 0, err
		}
		if stats.Counts.Succeeded == int64(n) {
			elapsed := time.Since(start)
			stop()
			<-done
			return float64(n) / elapsed.Seconds(), nil
		}
	}
}
