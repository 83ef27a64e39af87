// Package model is the desktop app's view model: what the dashboard says
// and which buttons it offers, computed from the server's Report, Status,
// Transfers and events. It has no Fyne import, so every figure and every
// state change is table-tested without a display; package gui only copies
// these values into widgets.
package model
