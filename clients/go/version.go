package rota

// Version is this library's version, the same as the Rota server it was written against.
const Version = "0.1.0"
