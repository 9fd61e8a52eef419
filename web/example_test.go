package web_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/web"
)

// A program that embeds a node serves its web view under a prefix of its
// own, behind whatever checks who may see it.
func ExampleHandler() {
	node, err := scopemesh.Open(context.Background(), scopemesh.Config{}) // in memory, of no cluster
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	mux := http.NewServeMux()
	mux.Handle("/scopemesh/", http.StripPrefix("/scopemesh", web.Handler(node)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, page := range []string{"/scopemesh/", "/scopemesh/events", "/scopemesh/api/status"} {
		resp, err := http.Get(srv.URL + page)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(page, resp.Status, resp.Header.Get("Content-Type"))
	}
	// Output:
	// /scopemesh/ 200 OK text/html; charset=utf-8
	// /scopemesh/events 200 OK text/html; charset=utf-8
	// /scopemesh/api/status 200 OK application/json
}
