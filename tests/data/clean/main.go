package main

import (
	"crypto/sha256"
	"fmt"
	"os"
)

// Version is set by the linker: -ldflags "-X main.Version=v1.22.3".
var Version = "v1.22.3"

const (
	defaultPort   = 8443
	configDigest  = "3f2a1c9d8b7e4d2a6f5c0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
	traceParent   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	emptyPassword = ""
)

type Config struct {
	Password string `json:"password,omitempty"`
	APIKey   string `json:"api_key" env:"API_KEY"`
	Token    string `yaml:"token"`
}

func load() Config {
	return Config{
		Password: os.Getenv("DB_PASSWORD"),
		APIKey:   os.Getenv("API_KEY"),
		Token:    os.Getenv("TOKEN"),
	}
}

func main() {
	cfg := load()
	sum := sha256.Sum256([]byte(cfg.Token))
	fmt.Printf("orders %s on :%d (%x)\n", Version, defaultPort, sum[:4])
}
