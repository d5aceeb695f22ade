"""flask-websub's subscriber against Herald's hub (interoperability test).

Usage: flask_subscriber.py HUB_URL TOPIC_URL COUNT

Serves flask-websub's callback blueprint on 127.0.0.1 (a free port), asks the
hub to subscribe to TOPIC_URL, and prints one JSON line per event on stdout:
{"event": "subscribed"} once the hub verified the subscription (flask-websub
checked hub.mode, hub.topic and hub.lease_seconds), then
{"event": "notification", "body": ...} for each delivery that flask-websub
accepted (with a secret, only correctly signed ones reach the listener).
Exits 0 after COUNT notifications; the Rust test bounds its run time.
"""

import json
import os
import sys
import tempfile
import threading

from flask import Flask
from flask_websub.subscriber import (
    SQLite3SubscriberStorage,
    SQLite3TempSubscriberStorage,
    Subscriber,
)
from werkzeug.serving import make_server


def say(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    hub_url, topic_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = os.path.join(tempfile.mkdtemp(prefix="flask-websub-"), "subscriber.sqlite")
    app = Flask(__name__)
    subscriber = Subscriber(
        SQLite3SubscriberStorage(db), SQLite3TempSubscriberStorage(db)
    )
    app.register_blueprint(subscriber.build_blueprint(url_prefix="/callbacks"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["SERVER_NAME"] = "127.0.0.1:%d" % server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()

    done = threading.Event()
    received = []

    def on_notification(topic, callback_id, body):
        received.append(body)
        say(event="notification", topic=topic, body=body.decode("utf-8"))
        if len(received) >= count:
            done.set()

    def on_success(topic, callback_id, mode):
        say(event=mode + "d", topic=topic)

    def on_error(topic, callback_id, reason):
        say(event="error", topic=topic, reason=reason)

    subscriber.add_listener(on_notification)
    subscriber.add_success_handler(on_success)
    subscriber.add_error_handler(on_error)
    with app.app_context():
        subscriber.subscribe(topic_url=topic_url, hub_url=hub_url, lease_seconds=600)
    done.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
