// Live order progress: while an order is pending its page listens to the server's event
// stream and puts each new rendering of the progress in place. Without JavaScript the page
// reloads itself instead (a <noscript> refresh).
"use strict";
(function () {
  const section = document.querySelector("[data-live]");
  if (!section || !window.EventSource) return;
  const source = new EventSource(section.dataset.live);
  const show = (event) => { section.innerHTML = event.data; };
  source.addEventListener("progress", show);
  source.addEventListener("settled", (event) => {
    show(event);
    source.close();
    section.removeAttribute("data-live");
  });
})();
