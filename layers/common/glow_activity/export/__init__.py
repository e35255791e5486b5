"""POST /export, all of it in one place:

- `route`: the operation's route (validates, answers a running export, decides sync or async, polls by upload id);
- `jobs`: a slot per caller and EXPORT_MAX_RUNNING in all, the `uploads` row, the asynchronous half (claimed once
  from its row) and how it is reached (`dispatcher`: a Lambda self-invocation or a thread, as EXPORT_ASYNC says);
- `writer`: every file read in one REPEATABLE READ snapshot by `COPY ... TO STDOUT`, deflated into a ZIP as it arrives;
- `copy_stream`: that COPY read a socket buffer at a time;
- `s3_stream`: the ZIP streamed into an S3 multipart upload, memory bounded.
"""
