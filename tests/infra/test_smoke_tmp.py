def test_smoke(deployment):
    import json

    print(json.dumps(deployment.outputs, indent=1))
