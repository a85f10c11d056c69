import io


def test_login_upload_download(ftp, home, recorder):
    ftp.storbinary("STOR hello.txt", io.BytesIO(b"hello world"))
    assert (home / "hello.txt").read_bytes() == b"hello world"
    out = io.BytesIO()
    ftp.retrbinary("RETR hello.txt", out.write)
    assert out.getvalue() == b"hello world"
    received = recorder.wait("ftp_file_received")
    assert received[0]["path"] == str(home / "hello.txt")
    assert received[0]["ftp_path"] == "/hello.txt"
