// Command watch_client is bench/watch.ts's watcher process written in Go: it holds COUNT
// Server-Sent-Events streams of pk "hot" and timestamps every put that arrives, like
// `watch.ts client` does, at a fraction of a JavaScript client's CPU per event. On a 2-core
// machine the clients share the cores with the node: the lighter the client, the more of the
// measured write-to-arrival latency is the server's.
//
// Protocol with the parent (bench/watch.ts --client-bin): prints {"ready":COUNT} once every
// stream has delivered its first id; when stdin closes, cancels the streams and prints
// {"latencies":[ms, ...],"ended":N}. A latency is the arrival time minus the "t" (unix ms) the
// broadcast put carried in its data.
//
// Usage: go build -o watch_client bench/watch_client.go
//
//	watch_client URL COUNT [h2c]   (h2c: HTTP/2 with prior knowledge, streams share connections)
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type putEvent struct {
	Data struct {
		T float64 `json:"t"`
	} `json:"data"`
}

func nowMs() float64 { return float64(time.Now().UnixNano()) / 1e6 }

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: watch_client URL COUNT [h2c]")
		os.Exit(2)
	}
	url := os.Args[1]
	count, err := strconv.Atoi(os.Args[2])
	if err != nil || count < 1 || count > 100_000 {
		fmt.Fprintln(os.Stderr, "watch_client: COUNT must be 1..100000")
		os.Exit(2)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: count, DisableCompression: true}
	if len(os.Args) > 3 && os.Args[3] == "h2c" {
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		transport.Protocols = protocols
	}
	client := &http.Client{Transport: transport}
	ctx, cancel := context.WithCancel(context.Background())

	var mu sync.Mutex
	latencies := make([]float64, 0, count*32)
	var ready, ended atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < count; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ended.Add(1)
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/records/watch?pk=hot", nil)
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					failed.Store(err.Error())
				}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Store(fmt.Sprintf("watch: %d", resp.StatusCode))
				return
			}
			scanner := bufio.NewScanner(resp.Body)
			scanner.Buffer(make([]byte, 0, 4096), 1<<20)
			first := true
			hasID := false
			event := ""
			var data []byte
			for scanner.Scan() {
				line := scanner.Bytes()
				switch {
				case len(line) == 0: // dispatch
					if hasID && first {
						first = false
						if ready.Add(1) == int64(count) {
							fmt.Printf("{\"ready\":%d}\n", count)
						}
					}
					if event == "put" {
						var put putEvent
						if json.Unmarshal(data, &put) == nil && put.Data.T > 0 {
							arrived := nowMs()
							mu.Lock()
							latencies = append(latencies, arrived-put.Data.T)
							mu.Unlock()
						}
					}
					hasID, event, data = false, "", data[:0]
				case bytes.HasPrefix(line, []byte("id:")):
					hasID = true
				case bytes.HasPrefix(line, []byte("event:")):
					event = string(bytes.TrimSpace(line[len("event:"):]))
				case bytes.HasPrefix(line, []byte("data:")):
					data = append(data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
				}
			}
		}()
	}

	// The parent closes stdin when it is done.
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	if msg, ok := failed.Load().(string); ok {
		fmt.Fprintln(os.Stderr, "watch_client:", msg)
	}
	mu.Lock()
	out, _ := json.Marshal(map[string]any{"latencies": latencies, "ended": ended.Load()})
	mu.Unlock()
	fmt.Println(string(out))
}
