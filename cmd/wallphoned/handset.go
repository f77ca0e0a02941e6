package main

import "github.com/wallphone/wallphone/device"

// handsetDevice is a real handset: the device interface, and a Close for shutdown.
type handsetDevice interface {
	device.Handset
	Close() error
}
