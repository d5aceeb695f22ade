-- wrk script: POST one small event per request.
wrk.method = "POST"
wrk.body   = "{\"px\":12.5,\"sym\":\"ACME\"}"
