package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/web"
)

// A process serves its own monitor, here of an emitter on the embedded
// broker, behind a token; the page reads the same JSON API as this example.
// Without a token the monitor listens on loopback only.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	em, err := sluice.NewEmitter("clicks", codec.String(), sluice.Brokers(b.Addrs()...))
	if err != nil {
		log.Fatal(err)
	}
	defer em.Close()
	for _, user := range []string{"user-1", "user-2", "user-1"} {
		if err := em.Emit(ctx, user, "click"); err != nil {
			log.Fatal(err)
		}
	}

	m := web.New(web.Emitters(em), web.Token("s3cret"))
	ln, err := m.Listen("127.0.0.1:0") // a free port; "" is DefaultAddr
	if err != nil {
		log.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- m.Serve(serveCtx, ln) }()

	url := "http://" + ln.Addr().String() + "/api/state"
	resp, err := http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("without the token:", resp.Status)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	var state struct {
		Emitters []struct {
			Topic           string
			Emitted, Errors int64
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range state.Emitters {
		fmt.Printf("%s: %d emitted, %d errors\n", e.Topic, e.Emitted, e.Errors)
	}

	_, err = web.New(web.Emitters(em)).Listen("0.0.0.0:9096")
	fmt.Println(err)

	stop()
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	// Output:
	// without the token: 401 Unauthorized
	// clicks: 3 emitted, 0 errors
	// monitor: refusing to listen on 0.0.0.0:9096 without a token: it is not a loopback address; set a token (web.Token) or allow it (web.AllowRemote)
}
