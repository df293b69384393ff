"""The site's own error pages, and sign-in for a signed-out visitor who follows a private link."""

from urllib.parse import quote

from django.urls import reverse

from captioning import selectors

BROWSER = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_signed_out_visitor_following_a_private_link_signs_in_and_lands_there(client, gallery):
    address = gallery.get_absolute_url()

    response = client.get(address, **BROWSER)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={quote(address)}"
    signed_in = client.post(
        response["Location"], {"username": "alice", "password": "a-Long-passw0rd", "next": address}, follow=True
    )
    assert signed_in.redirect_chain[-1][0] == address
    assert signed_in.status_code == 200
    assert gallery.title in signed_in.content.decode()


def test_a_signed_in_stranger_gets_the_sites_404_page(client, gallery, bob):
    client.force_login(bob)
    response = client.get(gallery.get_absolute_url(), **BROWSER)
    assert response.status_code == 404
    content = response.content.decode()
    assert "There is nothing here." in content
    assert "URLconf" not in content  # not Django's debug page listing every address


def test_an_image_or_script_request_gets_a_plain_404_not_the_sign_in_page(client, gallery):
    response = client.get(gallery.get_absolute_url(), HTTP_ACCEPT="image/avif,image/webp,*/*")
    assert response.status_code == 404


def test_a_server_error_renders_the_sites_500_page(client, monkeypatch):
    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "gallery_list_public", broken)
    client.raise_request_exception = False
    response = client.get(reverse("home"), **BROWSER)
    assert response.status_code == 500
    content = response.content.decode()
    assert "Something went wrong on our side." in content
    assert "secret internals" not in content
