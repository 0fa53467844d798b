// Package sampleapp writes the Compose file that the end-to-end tests and
// the benchmarks deploy: web (its port published on its host) counting
// hits in db (kvdb), the two talking over a clusternet network, db never
// on host1.
package sampleapp

import (
	"fmt"
	"strings"
)

// App is the shape of one deployment of the sample app.
type App struct {
	Name string
	Port int // web's published port
	// Volume is db's data volume: "" for none, "local" for a volume of
	// Docker's local driver (its data cannot follow db), otherwise the
	// clustervol driver options ("backend: copy").
	Volume string
	// WebOnHost1 pins web to host1.
	WebOnHost1 bool
}

// Compose is the app's Compose file.
func (a App) Compose() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nservices:\n  db:\n    image: sample/kvdb:latest\n    networks: [back]\n", a.Name)
	if a.Volume != "" {
		b.WriteString("    volumes: [data:/data]\n")
	}
	b.WriteString(`    deploy:
      placement:
        constraints: [node.hostname != host1]
    healthcheck:
      test: ["CMD", "/kvdb", "health"]
      interval: 1s
      retries: 30
  web:
    image: sample/web:latest
`)
	fmt.Fprintf(&b, "    ports: [\"%d:8080\"]\n", a.Port)
	b.WriteString(`    environment:
      DB_URL: http://db:7000
    networks: [front, back]
`)
	if a.WebOnHost1 {
		b.WriteString("    deploy:\n      placement:\n        constraints: [node.hostname == host1]\n")
	}
	b.WriteString(`    depends_on:
      db: {condition: service_healthy}
networks:
  front: {}
  back:
    driver: clusternet
`)
	switch a.Volume {
	case "":
	case "local":
		b.WriteString("volumes:\n  data: {}\n")
	default:
		fmt.Fprintf(&b, "volumes:\n  data:\n    driver: clustervol\n    driver_opts: {%s}\n", a.Volume)
	}
	return b.String()
}
