// The video page's action buttons show the server's answer, refusals included: htmx leaves
// 4xx/5xx responses unswapped by default, which would make a refused click look like nothing.
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (target && target.id === "action-result" && event.detail.xhr.status >= 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
    target.classList.add("error");
  } else if (target && target.id === "action-result") {
    target.classList.remove("error");
  }
});
