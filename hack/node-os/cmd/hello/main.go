// Command hello is the node OS image's demo app: an HTTP server (":8080", or $PORT) answering
// every request with "hello from <node>", where <node> is $NODE_NAME (set it from the downward
// API: spec.nodeName), else the host name.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	node := os.Getenv("NODE_NAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", node)
	})
	log.Printf("hello: serving on :%s as %s", port, node)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
