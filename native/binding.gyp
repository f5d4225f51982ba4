{
  "targets": [
    {
      "target_name": "nfvisor_io",
      "sources": ["nfvisor_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
